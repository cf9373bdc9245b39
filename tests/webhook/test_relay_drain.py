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
from support import relays, sessions

from jitgate.core.sessions import CLIENT_NOT_READING, Ending

PROTOCOL = relays.EXEC_PROTOCOL
SUCCESS = relays.EXIT_SUCCESS
RUN = sessions.shell(command=("cat", "big"), tty=False, stdin=False)
FRAME = b"\x01" + bytes(range(256)) * 128  # 32 KiB of stdout
DRAIN = dt.timedelta(seconds=30)
FRAMES = 128  # 4 MiB of stdout: more than the sockets and the client's buffers hold
INBOX = 16 * 1024 * 1024  # the relay takes the pod's whole output: the pod's side ends


async def test_a_client_that_stops_reading_is_dropped_at_the_drain_timeout(
    tmp_path: Path,
) -> None:
    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket_.prepare(request)
        for _ in range(FRAMES):
            await socket_.send_bytes(FRAME)
        await socket_.send_bytes(SUCCESS)
        await socket_.close()
        return socket_

    async with (
        relays.scene(
            tmp_path,
            pod,
            RUN,
            protocol=PROTOCOL,
            max_buffered=INBOX,
            small_buffers=True,
            drain_timeout=DRAIN,
        ) as cast,
        cast.users.ws_connect(cast.gateway_url, protocols=(PROTOCOL,)) as client,
    ):
        clock = cast.clock
        session = await asyncio.wait_for(cast.started.get(), 30)
        await asyncio.wait_for(session.draining(), 30)  # the pod's side has ended

        clock.advance(DRAIN - dt.timedelta(seconds=1))
        assert not session.end_if_stalled(clock.now())
        assert cast.endings.empty() and not session.is_cut
        clock.advance(dt.timedelta(seconds=1))
        assert session.end_if_stalled(clock.now())  # what the registry's loop calls
        ending = await cast.ending()

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
    last = cast.session_records()[-1]
    assert (last.type, last.reason) == (
        "session.terminated",
        f"{CLIENT_NOT_READING}: nothing taken for 30s",
    )
