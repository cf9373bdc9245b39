"""The relay fails closed on a port-forward tunnel it cannot read: over real WebSockets, bytes
that are not SPDY/3.1 end the session with the reason and never reach the pod's side, and the
connection open at that moment is recorded as ended with the session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from support import relays, sessions
from support.clocks import NOW
from support.spdy import Writer, data, forward_headers

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.query import Selection
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import Ending

PROTOCOL = "SPDY/3.1+portforward.k8s.io"


async def test_an_unreadable_tunnel_ends_the_session_and_is_not_relayed(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'audit'}"
    clock = ManualClock(NOW)
    reached_pod: list[bytes] = []
    endings: asyncio.Queue[Ending] = asyncio.Queue()

    async def pod(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=(PROTOCOL,))
        await socket.prepare(request)
        async for message in socket:
            reached_pod.append(message.data)
        return socket

    async with (
        relays.serving(pod) as pod_url,
        open_audit_writer(url, writer_id="gw-0", clock=clock, maintenance_interval=None) as log,
        aiohttp.ClientSession() as http,
    ):
        gateway = relays.relaying_gateway(
            log=log,
            run=sessions.FORWARD,
            clock=clock,
            upstreams=http,
            pod_url=pod_url,
            protocol=PROTOCOL,
            max_buffered=1 << 20,
            endings=endings,
        )

        async with relays.serving(gateway) as gateway_url:
            kubectl = Writer()
            opening = kubectl.syn_stream(1, forward_headers("error", 0), fin=True)
            opening += kubectl.syn_stream(3, forward_headers("data", 0))
            async with http.ws_connect(gateway_url, protocols=(PROTOCOL,)) as client:
                await client.send_bytes(opening)
                await client.send_bytes(data(3, b"SELECT 1;"))
                await client.send_bytes(b"\x80\x02\x00\x01" + bytes(4))  # SPDY/2: not read
                closed = await asyncio.wait_for(client.receive(), 10)
            ending = await asyncio.wait_for(endings.get(), 10)

    assert closed.type == aiohttp.WSMsgType.CLOSE  # the gateway closed the tunnel
    assert ending.cut
    assert ending.reason == (
        "port-forward tunnel unreadable: the client's side sent bytes that are not SPDY/3.1: "
        "a control frame of SPDY version 2, not 3"
    )
    assert reached_pod == [opening, data(3, b"SELECT 1;")]  # and nothing after
    reader = open_log_reader(url)
    found = reader.records(Selection(types=("session.*",)))
    records = [stored.record for stored in found]
    [connection] = [r.context for r in records if r.context and r.context.get("state") == "closed"]
    assert connection["bytes"] == {"toPod": 9, "fromPod": 0}
    assert connection["ended"] == f"open when the session ended ({ending.reason})"
    assert (records[-1].type, records[-1].reason) == ("session.terminated", ending.reason)
