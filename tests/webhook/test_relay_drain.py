"""A client that stops reading once the command has exited cannot hold its session for ever,
over real sockets: from the moment the pod's side has ended, the client has the drain timeout
(on the gateway's clock) to take the rest; then its connection is dropped and the session is
recorded as terminated, "client stopped reading". A client that reads gets everything."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
from aiohttp import web
from jitgate.webhook.gateway.relay import LiveSession
from support import relays
from support import sessions as recorded
from support.clocks import NOW

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.query import Selection
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import CLIENT_NOT_READING, Ending

PROTOCOL = relays.EXEC_PROTOCOL
SUCCESS = relays.EXIT_SUCCESS
RUN = recorded.shell(command=("cat", "big"), tty=False, stdin=False)
FRAME = b"\x01" + bytes(range(256)) * 128  # 32 KiB of stdout
DRAIN = dt.timedelta(seconds=30)
FRAMES = 128  # 4 MiB of stdout: more than the sockets and the client's buffers hold
INBOX = 16 * 1024 * 1024  # the relay takes the pod's whole output: the pod's side ends


async def test_a_client_that_stops_reading_is_dropped_at_the_drain_timeout(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path / 'audit'}"
    clock = ManualClock(NOW)
    sessions: asyncio.Queue[LiveSession] = asyncio.Queue()
    endings: asyncio.Queue[Ending] = asyncio.Queue()

    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket_.prepare(request)
        for _ in range(FRAMES):
            await socket_.send_bytes(FRAME)
        await socket_.send_bytes(SUCCESS)
        await socket_.close()
        return socket_

    async with (
        relays.serving(pod, small_buffers=True) as pod_url,
        open_audit_writer(url, writer_id="gw-0", clock=clock, maintenance_interval=None) as log,
        aiohttp.ClientSession(connector=relays.small_connector()) as upstreams,
    ):
        gateway = relays.relaying_gateway(
            log=log,
            run=RUN,
            clock=clock,
            upstreams=upstreams,
            pod_url=pod_url,
            protocol=PROTOCOL,
            max_buffered=INBOX,
            endings=endings,
            started=sessions,
            drain_timeout=DRAIN,
        )

        async with (
            relays.serving(gateway, small_buffers=True) as gateway_url,
            aiohttp.ClientSession(connector=relays.small_connector()) as users,
            users.ws_connect(gateway_url, protocols=(PROTOCOL,)) as client,
        ):
            session = await asyncio.wait_for(sessions.get(), 30)
            await asyncio.wait_for(session.draining(), 30)  # the pod's side has ended

            clock.advance(DRAIN - dt.timedelta(seconds=1))
            assert not session.end_if_stalled(clock.now())
            assert endings.empty() and not session.is_cut
            clock.advance(dt.timedelta(seconds=1))
            assert session.end_if_stalled(clock.now())  # what the registry's loop calls
            ending = await asyncio.wait_for(endings.get(), 30)

            received: list[aiohttp.WSMessage] = []
            while (message := await asyncio.wait_for(client.receive(), 30)).type in (
                aiohttp.WSMsgType.BINARY,
            ):
                received.append(message)

    assert ending == Ending.terminated(CLIENT_NOT_READING, "nothing taken for 30s")
    # Dropped: part of the output, never the exit status, then the connection ends.
    assert 0 < len(received) < FRAMES
    assert all(m.data == FRAME for m in received)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    records = open_log_reader(url).records(Selection(types=("session.*",)))
    last = [(stored.record.type, stored.record.reason) for stored in records][-1]
    assert last == ("session.terminated", f"{CLIENT_NOT_READING}: nothing taken for 30s")
