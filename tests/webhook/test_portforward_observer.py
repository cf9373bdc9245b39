"""A port-forward session's connections as the gateway records them from its SPDY tunnel: each
local connection opened and closed with its port, request id, bytes each way, duration and
how it ended; bytes the gateway cannot account for end the session instead of passing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jitgate.webhook.gateway.portforward import PortForwardObserver, TunnelCut
from support import sessions
from support.clocks import NOW
from support.spdy import Writer, data, forward_headers, rst_stream

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.query import Selection
from jitgate.audit.recorder import SessionRecorder
from jitgate.audit.sessionlog import Session, sessions_of
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import Ending


class Tunnel:
    """kubectl's side and the pod's side of one session's SPDY connection, observed."""

    def __init__(self, observer: PortForwardObserver, clock: ManualClock) -> None:
        self.observer = observer
        self.clock = clock
        self.kubectl = Writer()
        self.pod = Writer()

    async def connect(self, request_id: int, stream: int, port: int = 8080) -> None:
        """kubectl opens the error stream (closing its half at once), then the data stream;
        the pod's side replies to both."""
        error = self.kubectl.syn_stream(
            stream, forward_headers("error", request_id, port), fin=True
        )
        await self.observer.from_client(
            error + self.kubectl.syn_stream(stream + 2, forward_headers("data", request_id, port))
        )
        await self.observer.from_pod(self.pod.syn_reply(stream) + self.pod.syn_reply(stream + 2))

    async def echo(self, stream: int, payload: bytes) -> None:
        await self.observer.from_client(data(stream + 2, payload))
        await self.observer.from_pod(data(stream + 2, payload))

    async def close(self, stream: int) -> None:
        """Both sides close the data stream, the pod its error stream, kubectl resets."""
        await self.observer.from_client(data(stream + 2, fin=True))
        await self.observer.from_pod(data(stream + 2, fin=True) + data(stream, fin=True))
        await self.observer.from_client(rst_stream(stream + 2))


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[Tunnel, SessionRecorder, str]]:
    url = f"file://{tmp_path / 'audit'}"
    clock = ManualClock(NOW)
    async with open_audit_writer(
        url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, sessions.FORWARD, clock=clock, sleep=None)
        await recorder.start()
        yield Tunnel(PortForwardObserver(recorder), clock), recorder, url


def connections(url: str) -> list[dict[str, Any]]:
    reader = open_log_reader(url)
    found = reader.records(Selection(types=("session.connection",)))
    return [dict(stored.record.context or {}) for stored in found]


def session_of(url: str) -> Session:
    reader = open_log_reader(url)
    [session] = sessions_of(s.record for s in reader.records(Selection(types=("session.*",))))
    return session


async def test_two_connections_are_recorded_with_their_bytes_and_durations(
    recorded: tuple[Tunnel, SessionRecorder, str],
) -> None:
    tunnel, recorder, url = recorded
    tunnel.clock.advance(dt.timedelta(milliseconds=100))
    await tunnel.connect(0, stream=1)
    await tunnel.echo(1, b"x" * 1000)
    tunnel.clock.advance(dt.timedelta(milliseconds=250))
    await tunnel.connect(1, stream=5, port=9090)
    await tunnel.echo(5, b"y" * 70_000)
    await tunnel.observer.from_pod(data(7, b"extra"))
    await tunnel.close(1)
    tunnel.clock.advance(dt.timedelta(milliseconds=50))
    await tunnel.close(5)
    await recorder.end(Ending.client_closed())

    assert connections(url) == [
        {"state": "opened", "requestId": "0", "port": 8080, "offsetMs": 100},
        {"state": "opened", "requestId": "1", "port": 9090, "offsetMs": 350},
        {"state": "closed", "requestId": "0", "port": 8080, "offsetMs": 100,
         "durationMs": 250, "bytes": {"toPod": 1000, "fromPod": 1000}, "ended": "closed"},
        {"state": "closed", "requestId": "1", "port": 9090, "offsetMs": 350,
         "durationMs": 50, "bytes": {"toPod": 70_000, "fromPod": 70_005}, "ended": "closed"},
    ]  # fmt: skip
    session = session_of(url)
    assert session.problems == ()
    assert session.summary()["connections"] == 2
    assert session.summary()["forwardedBytes"] == {"toPod": 71_000, "fromPod": 71_005}


async def test_how_a_connection_ended_is_recorded(
    recorded: tuple[Tunnel, SessionRecorder, str],
) -> None:
    tunnel, recorder, url = recorded
    await tunnel.connect(0, stream=1)  # the pod's side cannot reach the port
    await tunnel.observer.from_pod(data(1, b"connection refused on port 8080", fin=True))
    await tunnel.observer.from_pod(rst_stream(3))
    await tunnel.connect(1, stream=5)  # the local program went away mid-stream
    await tunnel.echo(5, b"half")
    await tunnel.observer.from_client(rst_stream(7))
    await tunnel.observer.from_pod(data(7, b"in flight"))  # discarded by kubectl
    await tunnel.observer.from_pod(data(5, fin=True))
    await tunnel.connect(2, stream=9)  # still open when the grant ran out
    await tunnel.echo(9, b"abc")
    await tunnel.observer.end(Ending.terminated("grant expired"))
    await recorder.end(Ending.terminated("grant expired"))

    closed = [c for c in connections(url) if c["state"] == "closed"]
    assert [(c["requestId"], c["ended"], c["bytes"]) for c in closed] == [
        ("0", "error: connection refused on port 8080", {"toPod": 0, "fromPod": 0}),
        ("1", "reset by the client", {"toPod": 4, "fromPod": 4}),
        ("2", "open when the session ended (grant expired)", {"toPod": 3, "fromPod": 3}),
    ]
    assert tunnel.observer.late_bytes == len(b"in flight")
    assert session_of(url).problems == ()


@pytest.mark.parametrize(
    ("side", "sent", "said"),
    [
        (
            "client",
            b"\x80\x02\x00\x01" + bytes(4),
            "the client's side sent bytes that are not SPDY/3.1: a control frame of SPDY version 2",
        ),
        ("client", b"GET / HTTP/1.1\r\n\r\n", "data on stream 1195725856, which was never"),
        ("client", data(41, b"smuggled"), "data on stream 41, which was never opened"),
        ("pod", Writer().syn_stream(2, forward_headers("data", 0)), "a stream of its own"),
        ("client", Writer().syn_stream(1, {"port": "8080"}), "without the port-forward headers"),
    ],
)
async def test_bytes_it_cannot_account_for_end_the_session(
    recorded: tuple[Tunnel, SessionRecorder, str], side: str, sent: bytes, said: str
) -> None:
    tunnel, _, _ = recorded
    observe = tunnel.observer.from_client if side == "client" else tunnel.observer.from_pod
    with pytest.raises(TunnelCut, match=said) as cut:
        await observe(sent)
    assert cut.value.ending.cut
    assert cut.value.ending.reason.startswith("port-forward tunnel unreadable: ")


async def test_open_connections_are_bounded(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    async with open_audit_writer(
        f"file://{tmp_path}", writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, sessions.FORWARD, clock=clock, sleep=None)
        await recorder.start()
        tunnel = Tunnel(PortForwardObserver(recorder, max_open=2), clock)
        await tunnel.connect(0, stream=1)
        await tunnel.connect(1, stream=5)
        with pytest.raises(TunnelCut, match="more than 2 port-forward connections open at once"):
            await tunnel.connect(2, stream=9)


async def test_a_tunnel_that_stops_mid_frame_is_logged(
    recorded: tuple[Tunnel, SessionRecorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    tunnel, recorder, url = recorded
    await tunnel.connect(0, stream=1)
    await tunnel.observer.from_client(data(3, b"twelve bytes")[:-5])
    await tunnel.observer.end(Ending.client_closed())
    await recorder.durable()
    assert "the client's side of the tunnel stopped in the middle of a frame" in caplog.text
    [closed] = [c for c in connections(url) if c["state"] == "closed"]
    assert closed["bytes"] == {"toPod": 7, "fromPod": 0}  # what passed of the frame
