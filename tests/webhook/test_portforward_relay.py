"""The relay fails closed on a port-forward tunnel it cannot read: over real WebSockets, bytes
that are not SPDY/3.1 end the session with the reason and never reach the pod's side, and the
connection open at that moment is recorded as ended with the session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from support import relays, sessions
from support.spdy import Writer, data, forward_headers

PROTOCOL = "SPDY/3.1+portforward.k8s.io"


async def test_an_unreadable_tunnel_ends_the_session_and_is_not_relayed(tmp_path: Path) -> None:
    reached_pod: list[bytes] = []

    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket.prepare(request)
        async for message in socket:
            reached_pod.append(message.data)
        return socket

    kubectl = Writer()
    opening = kubectl.syn_stream(1, forward_headers("error", 0), fin=True)
    opening += kubectl.syn_stream(3, forward_headers("data", 0))
    async with relays.scene(
        tmp_path, pod, sessions.FORWARD, protocol=PROTOCOL, max_buffered=1 << 20
    ) as cast:
        async with cast.users.ws_connect(cast.gateway_url, protocols=(PROTOCOL,)) as client:
            await client.send_bytes(opening)
            await client.send_bytes(data(3, b"SELECT 1;"))
            await client.send_bytes(b"\x80\x02\x00\x01" + bytes(4))  # SPDY/2: not read
            closed = await asyncio.wait_for(client.receive(), 10)
        ending = await cast.ending()

    assert closed.type == aiohttp.WSMsgType.CLOSE  # the gateway closed the tunnel
    assert ending.cut
    assert ending.reason == (
        "port-forward tunnel unreadable: the client's side sent bytes that are not SPDY/3.1: "
        "a control frame of SPDY version 2, not 3"
    )
    assert reached_pod == [opening, data(3, b"SELECT 1;")]  # and nothing after
    records = cast.session_records()
    [connection] = [r.context for r in records if r.context and r.context.get("state") == "closed"]
    assert connection["bytes"] == {"toPod": 9, "fromPod": 0}
    assert connection["ended"] == f"open when the session ended ({ending.reason})"
    assert (records[-1].type, records[-1].reason) == ("session.terminated", ending.reason)
