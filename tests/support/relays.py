"""The session gateway's relay between real WebSockets on 127.0.0.1, for the relay tests.

`serving(handler)` serves a pod stand-in or a gateway the way the gateway is served (an
AppRunner: a handler is not cancelled when its client goes), optionally on sockets with small
buffers (`small_connector()` for the client side) so that backpressure shows at once.
`scene(...)` is one relayed session's whole cast: a pod stand-in, the gateway's handler for
alice's session (it opens the pod's side, starts the recorder, relays with
`jitgate.webhook.gateway.relay.relay` and hands out the session and how it ended), the
gateway's audit log on a manual clock, and an HTTP session for the users' side.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.relay import LiveSession, relay
from support.clocks import NOW

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.model import AuditRecord
from jitgate.audit.query import Selection
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


@dataclass
class Scene:
    """A gateway relaying alice's session to a pod stand-in, as the tests see it."""

    gateway_url: str
    users: aiohttp.ClientSession  # the users' side: `users.ws_connect(gateway_url, ...)`
    clock: ManualClock  # the gateway's
    audit_url: str  # the gateway's audit log
    started: asyncio.Queue[LiveSession] = field(default_factory=asyncio.Queue)
    endings: asyncio.Queue[Ending] = field(default_factory=asyncio.Queue)

    async def ending(self) -> Ending:
        """How the session ended, once it has (within 30 s)."""
        return await asyncio.wait_for(self.endings.get(), 30)

    def session_records(self) -> list[AuditRecord]:
        """The `session.*` records in the gateway's log, oldest first."""
        found = open_log_reader(self.audit_url).records(Selection(types=("session.*",)))
        return [stored.record for stored in found]


@contextlib.asynccontextmanager
async def scene(
    tmp_path: Path,
    pod: Handler,
    run: SessionStart,
    *,
    protocol: str,
    max_buffered: int,
    small_buffers: bool = False,
    writer_limit: int | None = None,
    drain_timeout: dt.timedelta | None = None,
) -> AsyncIterator[Scene]:
    """The gateway relaying alice's session `run` to `pod`, both served on 127.0.0.1; with
    `small_buffers`, every socket on the way has small buffers (backpressure shows at once)."""
    connector = small_connector if small_buffers else aiohttp.TCPConnector
    url = f"file://{tmp_path / 'audit'}"
    clock = ManualClock(NOW)
    async with (
        serving(pod, small_buffers=small_buffers) as pod_url,
        open_audit_writer(url, writer_id="gw-0", clock=clock, maintenance_interval=None) as log,
        aiohttp.ClientSession(connector=connector()) as upstreams,
        aiohttp.ClientSession(connector=connector()) as users,
    ):
        cast = Scene("", users, clock, url)
        gateway = _gateway(
            log=log,
            run=run,
            clock=clock,
            upstreams=upstreams,
            pod_url=pod_url,
            protocol=protocol,
            max_buffered=max_buffered,
            endings=cast.endings,
            started=cast.started,
            writer_limit=writer_limit,
            drain_timeout=drain_timeout,
        )
        async with serving(gateway, small_buffers=small_buffers) as gateway_url:
            cast.gateway_url = gateway_url
            yield cast


def _gateway(
    *,
    log: AuditWriter,
    run: SessionStart,
    clock: ManualClock,
    upstreams: aiohttp.ClientSession,
    pod_url: str,
    protocol: str,
    max_buffered: int,
    endings: asyncio.Queue[Ending],
    started: asyncio.Queue[LiveSession],
    writer_limit: int | None,
    drain_timeout: dt.timedelta | None,
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
        await started.put(session)
        ending = await relay(session, client, upstream, max_buffered=max_buffered)
        await recorder.end(ending)
        await endings.put(ending)
        return client

    return gateway
