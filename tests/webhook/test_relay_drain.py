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
from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.relay import LiveSession, relay
from support.clocks import NOW
from webhook.test_relay_backpressure import (
    FRAME,
    PROTOCOL,
    RUN,
    SUCCESS,
    serving,
    small_connector,
)

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.query import Selection
from jitgate.audit.recorder import SessionRecorder
from jitgate.core.actions import AttemptedAction
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import CLIENT_NOT_READING, Ending

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
        serving(pod) as pod_url,
        open_audit_writer(url, writer_id="gw-0", clock=clock, maintenance_interval=None) as log,
        aiohttp.ClientSession(connector=small_connector()) as upstreams,
    ):

        async def gateway(request: web.Request) -> web.WebSocketResponse:
            client = web.WebSocketResponse(protocols=(PROTOCOL,))
            upstream = await upstreams.ws_connect(pod_url, protocols=(PROTOCOL,))
            recorder = SessionRecorder(log, RUN, clock=clock, sleep=None)
            await recorder.start()
            await client.prepare(request)
            session = LiveSession(
                id=RUN.session,
                caller=Caller("alice"),
                attempted=AttemptedAction("exec", "prod", "pods", "web-0", command=RUN.command),
                recorder=recorder,
                clock=clock,
                drain_timeout=DRAIN,
            )
            await sessions.put(session)
            ending = await relay(session, client, upstream, max_buffered=INBOX)
            await recorder.end(ending)
            await endings.put(ending)
            return client

        async with (
            serving(gateway) as gateway_url,
            aiohttp.ClientSession(connector=small_connector()) as users,
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
