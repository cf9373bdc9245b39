"""The session gateway's relay between real WebSockets on 127.0.0.1, for the relay tests.

`serving(handler)` serves a pod stand-in or a gateway the way the gateway is served (an
AppRunner: a handler is not cancelled when its client goes), optionally on sockets with small
buffers (`small_connector()` for the client side) so that backpressure shows at once.
`relaying_gateway(...)` is the gateway's part of one session: it opens the pod's side, starts
the recorder, relays with `jitgate.webhook.gateway.relay.relay` and hands out the session
(`started`) and how it ended (`endings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.relay import LiveSession, relay

from jitgate.audit.recorder import SessionRecorder
from jitgate.audit.writer import AuditWriter
from jitgate.core.actions import AttemptedAction
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import Ending, SessionStart

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# kubectl's exec/attach channel protocol, and the status a command that exited 0 ends with.
EXEC_PROTOCOL = "v5.channel.k8s.io"
EXIT_SUCCESS = b'\x03{"metadata":{},"status":"Success"}'
SOCKET_BUFFER = 64 * 1024  # each small socket's own (the kernel's autotuning would grow to MiBs)


def small_socket(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    return sock


def small_connector() -> aiohttp.TCPConnector:
    """Client connections on sockets with small buffers."""
    return aiohttp.TCPConnector(socket_factory=lambda info: small_socket(info[0]))


@contextlib.asynccontextmanager
async def serving(handler: Handler, *, small_buffers: bool = False) -> AsyncIterator[str]:
    """`handler` at http://127.0.0.1:PORT/stream; with `small_buffers`, on a listening socket
    with small buffers (accepted sockets inherit them)."""
    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listening = small_socket() if small_buffers else socket.socket()
    listening.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, listening)
    await site.start()
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}/stream"
    finally:
        await runner.cleanup()


def relaying_gateway(
    *,
    log: AuditWriter,
    run: SessionStart,
    clock: ManualClock,
    upstreams: aiohttp.ClientSession,
    pod_url: str,
    protocol: str,
    max_buffered: int,
    endings: asyncio.Queue[Ending],
    started: asyncio.Queue[LiveSession] | None = None,
    writer_limit: int | None = None,
    drain_timeout: dt.timedelta | None = None,
) -> Handler:
    """The gateway's handler for alice's session `run`, relayed to the pod at `pod_url`."""
    attempted = AttemptedAction(run.kind, run.namespace, "pods", run.pod, command=run.command)

    async def gateway(request: web.Request) -> web.WebSocketResponse:
        options: dict[str, Any] = {} if writer_limit is None else {"writer_limit": writer_limit}
        client = web.WebSocketResponse(protocols=(protocol,), **options)
        upstream = await upstreams.ws_connect(pod_url, protocols=(protocol,))
        recorder = SessionRecorder(log, run, clock=clock, sleep=None)
        await recorder.start()
        await client.prepare(request)
        session = LiveSession(
            id=run.session,
            caller=Caller("alice"),
            attempted=attempted,
            recorder=recorder,
            clock=clock,
        )
        if drain_timeout is not None:
            session.drain_timeout = drain_timeout
        if started is not None:
            await started.put(session)
        ending = await relay(session, client, upstream, max_buffered=max_buffered)
        await recorder.end(ending)
        await endings.put(ending)
        return client

    return gateway
