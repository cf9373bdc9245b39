"""The gateway's aiohttp application, and `serving(...)`: it runs next to the webhook.

One handler for every path: the caller is checked first (`frontproxy`), then the path says what
is asked (`paths`). A stream is decided like the webhook decides it (`AdmissionService.verdict`);
a denial is answered with the webhook's words (and the `kubectl jit request` that asks for
access), also to kubectl's SPDY retry after a refused WebSocket. An allowed one is opened
through the API server as the caller with a fresh marker, `session.started` is made durable,
and only then is the client's WebSocket accepted with the protocol the API server chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from jitgate.webhook.audit import grant_facts
from jitgate.webhook.decode import Undecidable, connect_action
from jitgate.webhook.gateway import channels, marker
from jitgate.webhook.gateway.config import GatewayConfig
from jitgate.webhook.gateway.frontproxy import (
    Caller,
    NotFromFrontProxy,
    caller_from_headers,
    check_proxy_certificate,
)
from jitgate.webhook.gateway.paths import Document, PodRead, Refused, StreamTarget, route
from jitgate.webhook.gateway.readtoend import ReadToEndSite
from jitgate.webhook.gateway.registry import Registry, TooManySessions
from jitgate.webhook.gateway.relay import LiveSession, relay
from jitgate.webhook.gateway.upstream import Upstream, UpstreamRefused
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.tls import ReloadingTLS

from jitgate.audit.recorder import OrderedAppender, SessionRecorder
from jitgate.core.clock import Clock
from jitgate.core.sessions import Ending, SessionStart

logger = logging.getLogger(__name__)

_OPTIONS_KIND = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}
_TRUE = ("1", "true", "True")


def _status(status: int, message: str, reason: str) -> web.Response:
    return web.json_response(channels.status(message, reason, status), status=status)


def options_of(target: StreamTarget, query: Any) -> dict[str, Any]:
    """The Pod*Options object the API server will hand the webhook for this query."""
    options: dict[str, Any] = {"kind": _OPTIONS_KIND[target.verb], "apiVersion": "v1"}
    if target.verb == "portforward":
        ports = [int(p) for p in query.getall("ports", []) if p.isdigit()]
        return {**options, "ports": ports} if ports else options
    for flag in ("stdin", "stdout", "stderr", "tty"):
        options[flag] = query.get(flag) in _TRUE
    if query.get("container"):
        options["container"] = query["container"]
    if target.verb == "exec":
        options["command"] = query.getall("command", [])
    return options


class Gateway:
    """The handlers, with what they decide, open and record with."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        service: AdmissionService,
        upstream: Upstream,
        writer: Callable[[], OrderedAppender | None],
        session_key: bytes,
        clock: Clock,
    ) -> None:
        self.config = config
        self.service = service
        self.upstream = upstream
        self.writer = writer
        self.session_key = session_key
        self.clock = clock
        self.registry = Registry(
            service,
            clock,
            max_sessions=config.max_sessions,
            max_sessions_per_user=config.max_sessions_per_user,
            check_interval=config.check_interval,
        )

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            check_proxy_certificate(
                request.transport.get_extra_info("peercert") if request.transport else None,
                self.config.requestheader_allowed_names,
            )
            caller = caller_from_headers(request.headers.items())
        except NotFromFrontProxy as refused:
            reason = "Unauthorized" if refused.status == 401 else "Forbidden"
            return _status(refused.status, refused.message, reason)
        target = route(request.path)
        match target:
            case Document():
                return web.json_response(target.body)
            case Refused():
                return _status(target.status, target.message, "NotFound")
            case PodRead():
                if request.method != "GET":
                    return _status(405, "the session gateway only reads pods", "MethodNotAllowed")
                pod = await self.upstream.read_pod(caller, target.namespace, target.pod)
                return web.Response(
                    status=pod.status, body=pod.body, headers={"Content-Type": pod.content_type}
                )
            case StreamTarget():
                return await self.stream(request, caller, target)

    async def stream(
        self, request: web.Request, caller: Caller, target: StreamTarget
    ) -> web.StreamResponse:
        try:
            attempted = connect_action(
                target.verb, target.namespace, target.pod, options_of(target, request.query)
            )
        except (Undecidable, ValueError) as error:
            return _status(
                400, f"the session gateway cannot open this stream: {error}", "BadRequest"
            )
        verdict = await self.service.verdict(caller.user, caller.groups, attempted)
        if verdict is not None and not verdict.allowed:
            return _status(403, verdict.message, "Forbidden")
        try:  # before the protocol: kubectl's SPDY retry after a refused WebSocket hears why
            self.registry.check_room(caller)
        except TooManySessions as error:
            return _status(429, str(error), "TooManyRequests")
        supported = (
            channels.PORT_FORWARD_PROTOCOLS
            if target.verb == "portforward"
            else channels.STREAM_PROTOCOLS
        )
        protocols = channels.offered(request.headers.get("Sec-WebSocket-Protocol", ""), supported)
        if request.headers.get("Upgrade", "").lower() != "websocket" or not protocols:
            return _status(
                400,
                "the session gateway speaks the WebSocket stream protocols ("
                + ", ".join(supported)
                + "), which kubectl 1.31 and later use; upgrade kubectl",
                "BadRequest",
            )
        writer = self.writer()
        if writer is None:
            unready = "the session gateway cannot record sessions yet"
            return _status(503, unready, "ServiceUnavailable")
        try:
            with self.registry.slot(caller):
                return await self._open(
                    request, caller, target, attempted, verdict, protocols, writer
                )
        except TooManySessions as error:
            return _status(429, str(error), "TooManyRequests")

    async def _open(
        self,
        request: web.Request,
        caller: Caller,
        target: StreamTarget,
        attempted: Any,
        verdict: Any,
        protocols: tuple[str, ...],
        writer: OrderedAppender,
    ) -> web.StreamResponse:
        session_id = uuid.uuid4().hex
        stream = marker.Stream(
            caller.user, target.verb, target.namespace, target.pod, attempted.container or ""
        )
        signed = marker.sign(self.session_key, stream, session_id, self.clock.now())
        try:
            upstream = await self.upstream.open_stream(
                caller, target, list(request.query.items()), protocols, signed
            )
        except UpstreamRefused as refused:
            return web.Response(
                status=refused.status, body=refused.body, content_type="application/json"
            )
        grant = verdict.grant if verdict is not None else None
        governing = verdict.governing if verdict is not None else None
        options = options_of(target, request.query)
        decided = self.service.decision_of(session_id)
        start = SessionStart(
            session=session_id,
            kind=target.verb,
            user=caller.user,
            groups=caller.groups,
            namespace=target.namespace,
            pod=target.pod,
            container=attempted.container,
            command=attempted.command,
            tty=bool(options.get("tty")),
            stdin=bool(options.get("stdin")),
            grant=grant.name if grant else None,
            request=grant.spec.access_request.name if grant else None,
            approvers=tuple(grant_facts(grant.spec)["approvers"]) if grant else (),
            reason=grant.spec.reason if grant else None,
            ticket=grant.spec.ticket if grant else None,
            policies=tuple(governing.names) if governing else (),
            decision=(decided.writer, decided.seq) if decided is not None else None,
            ports=tuple(options.get("ports", ())),
        )
        recorder = SessionRecorder(
            writer,
            start,
            clock=self.clock,
            max_unacked_bytes=self.config.max_unrecorded_bytes,
            max_session_bytes=self.config.max_session_bytes,
        )
        try:
            await recorder.start()
        except Exception as error:
            await upstream.close()
            logger.error("Session %s not opened: cannot record it: %s", session_id, error)
            return _status(
                503,
                f"jitgate cannot record this session, so it is not opened: {error}",
                "ServiceUnavailable",
            )
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            max_msg_size=self.config.max_frame_bytes,
            writer_limit=self.config.max_buffered_bytes,
            autoping=True,
        )
        session = LiveSession(
            id=session_id,
            caller=caller,
            attempted=attempted,
            recorder=recorder,
            clock=self.clock,
            tty=start.tty,
            grant=grant.name if grant else None,
            expires_at=grant.spec.expires_at if grant else None,
            idle_timeout=governing.idle_timeout if governing else None,
            drain_timeout=dt.timedelta(seconds=self.config.drain_timeout),
            last_input=self.clock.now(),
        )
        ending = Ending.client_closed()
        self.registry.add(session)
        try:
            await client.prepare(request)
            ending = await relay(
                session, client, upstream, max_buffered=self.config.max_buffered_bytes
            )
        finally:
            self.registry.remove(session)
            try:
                await recorder.end(ending)
            except Exception as error:
                logger.error("Session %s: its end could not be recorded: %s", session_id, error)
        return client


@contextlib.asynccontextmanager
async def serving(gateway: Gateway, *, host: str, tls: ReloadingTLS) -> AsyncIterator[int]:
    """Serve `gateway` on its port (over `tls`, which asks for the front proxy's certificate)
    until the block ends; yields the port it listens on. Live sessions are cut on the way
    out, each told that the gateway stops."""
    runner = web.AppRunner(gateway.application(), access_log=None, handle_signals=False)
    await runner.setup()
    site = ReadToEndSite(runner, host, gateway.config.port, context=tls.context)
    await site.start()
    checks = asyncio.create_task(gateway.registry.run(), name="gateway-session-checks")
    server = site._server
    sockets = getattr(server, "sockets", None) or ()
    port = sockets[0].getsockname()[1] if sockets else gateway.config.port
    logger.info("Session gateway listening on %s:%s", host, port)
    try:
        yield port
    finally:
        gateway.registry.stop_all()
        checks.cancel()
        await asyncio.gather(checks, return_exceptions=True)
        await runner.cleanup()
        await gateway.upstream.close()
