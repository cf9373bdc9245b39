"""A client that stops reading slows the pod down, over real sockets: the relay holds a bounded
amount for it (its inbox and the client's write buffer, `maxBufferedBytes`, plus what the
sockets hold), never the pod's whole output; once the client reads again every byte arrives,
in order, with the exit status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from support import relays, sessions

from jitgate.core.sessions import Ending

PROTOCOL = relays.EXEC_PROTOCOL
SUCCESS = relays.EXIT_SUCCESS
RUN = sessions.shell(command=("cat", "big"), tty=False, stdin=False)
HELD = 256 * 1024  # the relay's bound: its inbox, and the client's write buffer
FRAME = b"\x01" + bytes(range(256)) * 128  # 32 KiB of stdout
FRAMES = 256  # 8 MiB in all
# What may be on its way when the pod is stopped: the relay's bound twice (inbox and client
# buffer), every socket buffer (doubled by the kernel) and aiohttp's read queues, rounded up.
IN_FLIGHT = 2 * 1024 * 1024


async def quiet(sent: list[int]) -> int:
    """`sent[0]` once it has stopped growing (three looks 0.2 s apart, within 20 s)."""
    async with asyncio.timeout(20):
        last, unchanged = -1, 0
        while unchanged < 3:
            await asyncio.sleep(0.2)
            unchanged = unchanged + 1 if sent[0] == last else 0
            last = sent[0]
    return last


async def test_a_client_that_stops_reading_stops_the_pod(tmp_path: Path) -> None:
    sent = [0]

    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket_.prepare(request)
        for _ in range(FRAMES):
            await socket_.send_bytes(FRAME)  # waits while the relay does not read
            sent[0] += len(FRAME) - 1
        await socket_.send_bytes(SUCCESS)
        await socket_.close()
        return socket_

    async with relays.scene(
        tmp_path,
        pod,
        RUN,
        protocol=PROTOCOL,
        max_buffered=HELD,
        small_buffers=True,
        writer_limit=HELD,
    ) as cast:
        async with cast.users.ws_connect(cast.gateway_url, protocols=(PROTOCOL,)) as client:
            stopped_at = await quiet(sent)  # the client has read nothing yet
            received = b""
            while (message := await asyncio.wait_for(client.receive(), 30)).data != SUCCESS:
                assert message.type == aiohttp.WSMsgType.BINARY, message
                received += message.data[1:]
        ending = await cast.ending()

    assert stopped_at <= IN_FLIGHT < FRAMES * (len(FRAME) - 1)
    assert received == FRAME[1:] * FRAMES
    assert ending == Ending.exited(0)
