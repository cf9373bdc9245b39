"""Running the webhook: uvicorn over TLS, the cluster watch and the audit writer, together.

`run_webhook(config)` is what `jitgate webhook` runs: `serve(config)` on uvloop, with
uvicorn's httptools HTTP parser (uvicorn[standard]: how FastAPI is served in production).
Tests, the demo and the real-API-server tier start one in-process with `running(config)` (in
the current event loop) or `run_webhook_in_thread(config)` (in a uvloop thread of its own, for
synchronous callers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

import uvicorn
import uvloop
from jitgate.webhook.app import create_app
from jitgate.webhook.audit import AuditSink
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.callers import (
    CALLER_UNVERIFIED,
    CALLER_VERIFIED,
    OnlyVerifiedCallers,
    Refusals,
    TLSScopeProtocol,
)
from jitgate.webhook.config import WebhookConfig
from jitgate.webhook.gateway.app import Gateway, serving
from jitgate.webhook.gateway.marker import SessionKeyError, load_session_key
from jitgate.webhook.gateway.upstream import Upstream
from jitgate.webhook.http1 import OneWriteProtocol
from jitgate.webhook.livegrants import LiveGrants
from jitgate.webhook.lookups import ApiReader, NoReader
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.routers.witness import peer_witness
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.tls import ReloadingTLS
from jitgate.webhook.uses import UseCounter
from jitgate.webhook.watch import Backoff, ClusterWatch, grant_store, read_grants
from kubernetes import client as k8s

from jitgate.audit.connect import open_audit_writer
from jitgate.audit.errors import AuditError
from jitgate.audit.keys import load_checkpoint_key, load_key
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.events import AuditEvent
from jitgate.kube import Credentials, CredentialsError, load_credentials

logger = logging.getLogger(__name__)

AuditOpener = Callable[[], AbstractAsyncContextManager[AuditSink]]


def api_client_for(config: WebhookConfig) -> k8s.ApiClient:
    """A client for the credentials `jitgate.kube`'s rule picks; CredentialsError if none."""
    return k8s.ApiClient(kubernetes_configuration(load_credentials(config.kubeconfig)))


def kubernetes_configuration(credentials: Credentials) -> k8s.Configuration:
    """`credentials` as the `kubernetes` client takes them. The whole Authorization header
    (bearer or basic) is its api key, renewed through the client's refresh hook before each
    call (a token file re-read, an exec plugin run again)."""
    configuration = k8s.Configuration(host=credentials.server, ssl_ca_cert=credentials.ca_path)
    configuration.verify_ssl = not credentials.insecure
    configuration.cert_file = credentials.certificate_path
    configuration.key_file = credentials.private_key_path

    def refresh(configuration: k8s.Configuration) -> None:
        authorization = credentials.authorization()
        if authorization is not None:
            configuration.api_key["authorization"] = authorization

    if credentials.authorization() is not None:
        # kubernetes 37 annotates the attribute as None; its docs describe this hook.
        configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
        refresh(configuration)
    return configuration


def audit_opener(
    config: WebhookConfig,
    clock: Clock,
    *,
    checkpoint_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AuditOpener:
    """Opens the audit writer named by --audit, signing with --audit-key-file and
    --checkpoint-key if given (its checkpointer waiting between polls with `checkpoint_sleep`:
    tests pass one they release, as `build(audit=...)`)."""
    key = None
    if config.audit_key_file is not None:
        key = load_key(config.audit_key_file)
    checkpoint_key = None
    if config.checkpoint_key_file is not None:
        checkpoint_key = load_checkpoint_key(config.checkpoint_key_file)

    def open_() -> AbstractAsyncContextManager[AuditSink]:
        return open_audit_writer(
            config.audit_url,
            writer_id=config.writer_id,
            key=key,
            clock=clock,
            checkpoint_key=checkpoint_key,
            witnesses=config.witnesses,
            witness_ca=config.witness_ca,
            checkpoint_sleep=checkpoint_sleep,
            # Its event loop is busy with TLS and reviews: a sync thread would wait on its GIL.
            append_process=True,
        )

    return open_


@dataclass
class Webhook:
    """One assembled webhook: the app, what it decides with, and what feeds it."""

    config: WebhookConfig
    # The admission front before the FastAPI app (`jitgate.webhook.app`).
    app: Any
    # What uvicorn serves: `app`, behind the caller check when --client-ca is set.
    served: Any
    service: AdmissionService
    cache: ClusterCache
    tls: ReloadingTLS
    opened: Callable[[], AbstractAsyncContextManager[None]]
    # The session gateway's port once `opened()` serves it (None: no gateway).
    gateway_port: int | None = None


class StartupError(RuntimeError):
    """The webhook could not start; the message says why in one sentence."""


def build(
    config: WebhookConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    api_client: k8s.ApiClient | None = None,
    audit: AuditOpener | None = None,
    backoff: Backoff | None = None,
) -> Webhook:
    """Assemble the app; `webhook.opened()` opens the audit log and starts the watch."""
    metrics = Metrics()
    cache = ClusterCache()
    open_audit = audit or audit_opener(config, clock)
    refusals = Refusals(metrics)
    tls = ReloadingTLS(
        config.tls_cert,
        config.tls_key,
        client_ca=config.client_ca,
        interval=config.tls_reload_interval,
        on_reload=metrics.tls_reloads.inc,
        on_refused=refusals.handshake_failed,
        # No caller resumes a session; `OneWriteProtocol` acknowledges the handshake instead.
        session_tickets=False,
    )
    sink = _LateSink(CALLER_VERIFIED if config.client_ca is not None else CALLER_UNVERIFIED)
    session_key = None
    if config.session_key_file is not None:
        try:
            session_key = load_session_key(config.session_key_file)
        except SessionKeyError as error:
            raise StartupError(f"the webhook could not start: {error}") from error
    if config.gateway is not None and session_key is None:
        raise StartupError("the webhook could not start: the session gateway needs --session-key")
    cache.on_late_grant = metrics.watch_lag.observe
    service = AdmissionService(
        cache=cache,
        audit=sink,
        metrics=metrics,
        clock=clock,
        exemptions=config.exemptions,
        operator_user=config.operator_user,
        grant_collectors=config.grant_collectors,
        session_key=session_key,
        webhook_user=config.webhook_user,
    )

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[None]:
        # In the serving event loop, before the server listens: a log that cannot be opened
        # stops the start with its reason, and no review is ever answered without one.
        async with contextlib.AsyncExitStack() as stack:
            try:
                sink.target = await stack.enter_async_context(open_audit())
            except Exception as error:
                raise StartupError(f"the webhook could not start: {error}") from error
            stack.callback(setattr, sink, "target", None)
            try:
                client = api_client or api_client_for(config)
            except CredentialsError as error:
                raise StartupError(
                    f"the webhook could not start: cannot load the cluster configuration: {error}"
                ) from error
            if api_client is None:
                stack.callback(client.close)
            service.reader = ApiReader(client)
            stack.callback(setattr, service, "reader", NoReader())
            service.live_grants = LiveGrants(functools.partial(read_grants, client))
            stack.callback(setattr, service, "live_grants", None)
            service.use_counter = UseCounter(grant_store(client))
            stack.callback(setattr, service, "use_counter", None)
            watch = ClusterWatch(
                client,
                cache,
                metrics=metrics,
                backoff=backoff or Backoff(),
                read_timeout=config.watch_read_timeout,
            )
            watch.start()
            stack.push_async_callback(asyncio.to_thread, watch.stop)
            if config.gateway is not None:
                assert session_key is not None
                webhook.gateway_port = await stack.enter_async_context(
                    _gateway(config, service, sink, session_key, clock)
                )
            yield

    try:
        witnessing = peer_witness(config)
    except (AuditError, OSError) as error:
        raise StartupError(f"the webhook could not start: {error}") from error
    app = create_app(
        service,
        max_in_flight=config.max_in_flight,
        queue_wait=config.queue_wait,
        trust_traces=config.apiserver_traces,
        peer_witness=witnessing,
    )
    served = OnlyVerifiedCallers(app, refusals) if config.client_ca is not None else app
    webhook = Webhook(config, app, served, service, cache, tls, opened)
    return webhook


def _gateway(
    config: WebhookConfig,
    service: AdmissionService,
    sink: _LateSink,
    session_key: bytes,
    clock: Clock,
) -> AbstractAsyncContextManager[int]:
    """The session gateway, serving next to the webhook with its decisions and audit writer."""
    gateway_config = config.gateway
    assert gateway_config is not None
    try:
        credentials = load_credentials(config.kubeconfig)
    except CredentialsError as error:
        raise StartupError(
            f"the session gateway could not start: cannot load the cluster configuration: {error}"
        ) from error
    upstream = Upstream(
        credentials,
        max_frame_bytes=gateway_config.max_frame_bytes,
        open_timeout=gateway_config.open_timeout,
    )
    gateway = Gateway(
        gateway_config,
        service=service,
        upstream=upstream,
        writer=lambda: sink.target,  # type: ignore[arg-type,return-value]
        session_key=session_key,
        clock=clock,
    )
    tls = ReloadingTLS(
        config.tls_cert,
        config.tls_key,
        client_ca=gateway_config.requestheader_client_ca,
        interval=config.tls_reload_interval,
    )
    return serving(gateway, host=config.host, tls=tls)


class _LateSink:
    """The audit writer, once `opened()` has opened it in the serving event loop.

    Every record of an admission review says whether its caller was verified
    (`jitgate.webhook.callers`): it is the same for every review a process answers.
    """

    target: AuditSink | None = None

    def __init__(self, caller: str) -> None:
        self._caller = caller

    async def append(self, event: AuditEvent) -> Any:
        if self.target is None:
            raise RuntimeError("the audit log is not open")
        if event.admission_uid is not None:
            event = event.model_copy(update={"caller": self._caller})
        return await self.target.append(event)


def http_options(*, client_ca: bool) -> dict[str, Any]:
    """How uvicorn serves the webhook's HTTP/1.1 (`make bench` serves it the same way)."""
    return {
        "http": TLSScopeProtocol if client_ca else OneWriteProtocol,
        # The API server connects directly: no X-Forwarded-For is believed, from anyone (a
        # local peer could otherwise name the address the decision memo keys callers by),
        # and no review pays for the middleware that would read it.
        "proxy_headers": False,
    }


def _uvicorn_config(webhook: Webhook) -> uvicorn.Config:
    return uvicorn.Config(
        webhook.served,
        # The caller check reads the client certificate from the ASGI TLS extension.
        **http_options(client_ca=webhook.config.client_ca is not None),
        host=webhook.config.host,
        port=webhook.config.port,
        ssl_context_factory=lambda _config, _default: webhook.tls.context,
        access_log=False,
        log_config=None,
        lifespan="off",
        # The API server keeps connections open between reviews.
        timeout_keep_alive=60,
    )


def run_webhook(config: WebhookConfig, **kwargs: Any) -> None:
    """`serve(config)` in a uvloop event loop of its own (what `jitgate webhook` runs)."""
    uvloop.run(serve(config, **kwargs))


async def serve(config: WebhookConfig, **kwargs: Any) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return; StartupError if it cannot start.

    uvicorn's own handling re-raises the signal after draining, so the process would die of
    it; a stop asked for is a clean exit here.
    """
    hand_over_promptly()
    webhook = build(config, **kwargs)
    webhook.cache.on_replace = lambda _kind: settle_heap(webhook.cache)
    sock = _listen(config)
    server = _Server(webhook)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    try:
        async with webhook.opened():
            await server.serve(sockets=[sock])
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        sock.close()


# Objects allocated (net) between young-generation collections (`settle_heap`).
YOUNG_GENERATION: Final = 10_000
# CPython's default is 5 ms (`sys.getswitchinterval`).
GIL_SWITCH_INTERVAL: Final = 0.0005


def hand_over_promptly() -> None:
    """Let the process's other threads have the GIL back within 0.5 ms instead of 5 ms.

    A busy event loop (the webhook under load) keeps the GIL for up to the switch interval,
    and the allows that wait on a thread wait that long: the audit log's batches, when its
    file sink writes them on its thread (a lone record, a new segment, a seal, every batch
    when the append process could not start: `jitgate.audit.appendproc`), and its
    checkpoints. Only those and the watch threads ever ask for it, so switching sooner costs
    next to nothing. For a process of its own (`serve`): it is interpreter-wide.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def settle_heap(cache: ClusterCache) -> None:
    """Once the cache holds a full list, move what is alive out of the garbage collector's
    sight: a full collection would otherwise scan every cached grant and stall every answer
    for tens of milliseconds (hundreds with 100,000 grants), which is the webhook's p99.

    And collect the young generation after `YOUNG_GENERATION` new objects instead of
    CPython's 700: a review allocates hundreds (a DELETE's parsed object thousands), so at
    700 the reviews in flight, still alive, were promoted collection after collection
    until a full collection scanned the memo's 16,384 entries (~30 ms each). That was ~40 µs
    of CPU per allowed exec and ~150 µs per DELETE (callgrind and `gc.callbacks`); now ~2
    µs and ~9 µs. Only reference cycles wait longer to be freed, and reviews make none.

    Only for a process of its own (`serve`): frozen objects are never collected.
    """
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
    if cache.synced:
        gc.collect()
        gc.freeze()


@dataclass
class RunningWebhook:
    """A webhook serving on `url`; `cache.wait_until(...)` waits for what the watch delivers."""

    url: str
    webhook: Webhook
    server: uvicorn.Server

    @property
    def service(self) -> AdmissionService:
        return self.webhook.service

    @property
    def cache(self) -> ClusterCache:
        return self.webhook.cache

    def wait_synced(self, timeout: float = 10.0) -> bool:
        return self.cache.wait_until(lambda cache: cache.synced, timeout)


def _listen(config: WebhookConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # The explicit protocol matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto is IPPROTO_TCP, and without it Nagle's algorithm adds ~40 ms to every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as error:
        sock.close()
        where = f"{_url_host(config.host)}:{config.port}"
        raise StartupError(f"the webhook could not listen on {where}: {error.strerror}") from error
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, with a failed start-up raised instead of exiting the process."""

    def __init__(self, webhook: Webhook) -> None:
        super().__init__(_uvicorn_config(webhook))
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            # asyncio lets SystemExit escape the event loop; an exception stays in its task.
            raise StartupError("the webhook could not start; uvicorn logged why") from None
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # `serve` or the embedding program handles signals


@contextlib.asynccontextmanager
async def running(config: WebhookConfig, **kwargs: Any) -> AsyncIterator[RunningWebhook]:
    """Serve in the current event loop (port 0 picks a free port) until the block exits."""
    webhook = build(config, **kwargs)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(webhook.opened())
        sock = _listen(config)
        stack.callback(sock.close)
        server = _Server(webhook)
        url = await stack.enter_async_context(_serving(server, sock))
        yield RunningWebhook(url, webhook, server)


@contextlib.asynccontextmanager
async def _serving(server: _Server, sock: socket.socket) -> AsyncIterator[str]:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    listening = asyncio.create_task(server.listening.wait())
    try:
        await asyncio.wait([task, listening], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task  # raises StartupError
        if not server.started:
            raise StartupError("the webhook could not start: it was not listening after 30 seconds")
        host, port = sock.getsockname()[:2]
        yield f"https://{_url_host(host)}:{port}"
    finally:
        listening.cancel()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def run_webhook_in_thread(config: WebhookConfig, **kwargs: Any) -> Iterator[RunningWebhook]:
    """Serve in a thread with its own (uvloop) event loop, for callers without one (demo, CLI
    tests, the real-API-server tier)."""
    ready: list[RunningWebhook] = []
    failed: list[BaseException] = []
    started = threading.Event()
    stop: asyncio.Event | None = None
    loop = uvloop.new_event_loop()

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            async with running(config, **kwargs) as handle:
                ready.append(handle)
                started.set()
                await stop.wait()
        except BaseException as error:
            failed.append(error)
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(30)
    try:
        if failed:
            raise failed[0]
        if not ready:
            raise RuntimeError("the webhook did not start within 30 seconds")
        yield ready[0]
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
