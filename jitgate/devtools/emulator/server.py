"""Serving an emulator over plain HTTP on 127.0.0.1, in a test's event loop or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp.web
import yaml

from jitgate.devtools.emulator.kinds import CrdSource, register_jitgate_kinds
from jitgate.devtools.emulator.store import KubeEmulator
from jitgate.devtools.emulator.users import kubeconfig_document

if TYPE_CHECKING:
    import kopf
    import kubernetes.client


@dataclasses.dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it listens and how clients reach it."""

    emulator: KubeEmulator
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        user: str = "admin",
        namespace: str = "default",
        *,
        users: Iterable[str] = (),
    ) -> Path:
        """A kubeconfig with one context per user (named after it; ``user`` is current).
        Each user's bearer token is its name (see :func:`.users.request_user`)."""
        names = list(dict.fromkeys([user, *users]))
        document = kubeconfig_document(self.url, names, namespace)
        target = Path(path)
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        return target

    def connection_info(
        self, user: str = "admin", namespace: str = "default"
    ) -> kopf.ConnectionInfo:
        """Credentials for ``@kopf.on.login`` handlers."""
        import kopf

        return kopf.ConnectionInfo(
            server=self.url, scheme="Bearer", token=user, default_namespace=namespace
        )

    def kubernetes_configuration(self, user: str = "admin") -> kubernetes.client.Configuration:
        """A ``kubernetes.client.Configuration`` for ``ApiClient(configuration=...)``."""
        import kubernetes.client

        config = kubernetes.client.Configuration(host=self.url)
        config.api_key = {"authorization": user}
        config.api_key_prefix = {"authorization": "Bearer"}
        return config


@contextlib.asynccontextmanager
async def run_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    emulator: KubeEmulator | None = None,
    jitgate_kinds: bool = True,
    crds: Iterable[CrdSource] = (),
) -> AsyncIterator[EmulatorHandle]:
    """Serve an emulator over plain HTTP in the running event loop; it serves jitgate's kinds
    (from ``crds`` if given, else the generated CRDs) unless ``jitgate_kinds`` is false."""
    emulator = emulator if emulator is not None else KubeEmulator()
    if jitgate_kinds:
        register_jitgate_kinds(emulator, crds)
    elif crds:
        emulator.load_crds(*crds)
    async with emulator:
        # handler_cancellation: a watch handler ends when its client goes away.
        server = aiohttp.web.Server(emulator, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, host, port)
            await site.start()
            yield EmulatorHandle(emulator, host, runner.addresses[0][1])
        finally:
            emulator.close_watches()
            await runner.cleanup()


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    users: Sequence[str] = ("admin",),
    namespace: str = "default",
    crds: Iterable[CrdSource] = (),
    ready: Callable[[EmulatorHandle], None] | None = None,
) -> None:
    """Serve until cancelled or SIGINT/SIGTERM; write the kubeconfig, then call ``ready``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    emulator = KubeEmulator(request_log_limit=1000, history_limit=5000)
    async with run_emulator(host, port, emulator=emulator, crds=crds) as handle:
        if kubeconfig is not None:
            handle.write_kubeconfig(kubeconfig, users[0], namespace, users=users[1:])
        if ready is not None:
            ready(handle)
        await stop.wait()
