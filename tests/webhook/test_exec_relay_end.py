"""How the relay ends an exec, over real WebSockets: after the pod's side sent its exit status
and closed, the client gets every byte, the status and then the gateway's close (kubectl waits
for it); a pod side that ends without the status is a lost stream, said to the user (kubectl
exits 1 with the words) and recorded as `session.terminated`, never a silent success."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp import web
from support import relays, sessions

from jitgate.core.sessions import STREAM_LOST, Ending

PROTOCOL = relays.EXEC_PROTOCOL
SUCCESS = relays.EXIT_SUCCESS
RUN = sessions.shell(command=("seq", "1", "100000"), tty=False, stdin=False)


async def relayed(
    tmp_path: Path, pod_sends: list[bytes]
) -> tuple[list[aiohttp.WSMessage], Ending, list[tuple[str, str | None]]]:
    """What a client reads through the relay from a pod side that sends `pod_sends` and then
    closes, how the session ended, and its records (type, reason)."""

    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket.prepare(request)
        for message in pod_sends:
            await socket.send_bytes(message)
        await socket.close()
        return socket

    got: list[aiohttp.WSMessage] = []
    async with relays.scene(tmp_path, pod, RUN, protocol=PROTOCOL, max_buffered=64 * 1024) as cast:
        async with cast.users.ws_connect(cast.gateway_url, protocols=(PROTOCOL,)) as client:
            while (message := await asyncio.wait_for(client.receive(), 30)).type in (
                aiohttp.WSMsgType.BINARY,
            ):
                got.append(message)
            got.append(message)  # how it ended: the gateway's close
        ending = await cast.ending()
    return got, ending, [(record.type, record.reason) for record in cast.session_records()]


def stdout_frames(total: int, size: int = 32 * 1024) -> tuple[list[bytes], bytes]:
    data = bytes(range(256)) * (total // 256)
    return [b"\x01" + data[at : at + size] for at in range(0, len(data), size)], data


async def test_every_byte_then_the_status_then_the_gateways_close(tmp_path: Path) -> None:
    frames, data = stdout_frames(4 * 1024 * 1024)  # 64 times what the relay holds

    got, ending, records = await relayed(tmp_path, [*frames, SUCCESS])

    *messages, end = got
    assert b"".join(m.data[1:] for m in messages if m.data[:1] == b"\x01") == data
    assert messages[-1].data == SUCCESS
    assert end.type == aiohttp.WSMsgType.CLOSE  # the gateway closed; the client never did
    assert ending == Ending.exited(0)
    assert records[-1] == ("session.ended", "exited with code 0")


async def test_a_pod_side_ending_without_the_status_is_a_lost_stream(tmp_path: Path) -> None:
    frames, data = stdout_frames(1024 * 1024)

    got, ending, records = await relayed(tmp_path, frames)

    *messages, status, end = got
    assert b"".join(m.data[1:] for m in messages if m.data[:1] == b"\x01") == data
    words = (
        "jitgate ended this session: the stream from the pod ended before the command's exit "
        "status; its output may be incomplete"
    )
    assert messages[-1].data == b"\x02" + words.encode() + b"\n"  # on the user's stderr
    assert status.data[:1] == b"\x03"  # kubectl prints `error: <message>` and exits 1
    assert json.loads(status.data[1:])["status"] == "Failure"
    assert json.loads(status.data[1:])["message"] == words
    assert end.type == aiohttp.WSMsgType.CLOSE
    assert (ending.cut, ending.reason) == (True, STREAM_LOST)
    assert records[-1] == ("session.terminated", STREAM_LOST)
