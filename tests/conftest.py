"""Fixtures shared by every test tier: the Kubernetes API emulator and clients for it.

The emulator runs in the test's event loop, so talk to it without blocking that loop:
the `kubernetes` client through `asyncio.to_thread`, `kubectl` through the async `kubectl`
fixture, kopf as a task (see the `jitgate.devtools.emulator` docstring for the recipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes.client
import pytest
from hypothesis import settings
from support import personas

from jitgate.devtools.emulator import EmulatorHandle, KubeEmulator, run_emulator

if TYPE_CHECKING:
    import kopf

CRDS_DIR = Path(__file__).resolve().parents[1] / "crds"

# Hypothesis fails an example that runs over 200 ms by default: a timed assertion, which a
# loaded machine trips (a garbage collection, a first call importing a module) and a rerun
# does not (a property of the decoder that failed twice in full runs, never alone). The
# properties check behaviour; speed is measured in `make bench`.
settings.register_profile("jitgate", deadline=None)
settings.load_profile("jitgate")


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    """A fresh emulator on 127.0.0.1 serving jitgate's kinds (from `crds/*.yaml` if any).

    `keep_alive=False` closes each non-watch connection after its response, so no idle
    server task outlives a request (kopf would wait 5 s for such "hung" tasks at exit).
    """
    crds = sorted(CRDS_DIR.glob("*.yaml"))
    async with run_emulator(emulator=KubeEmulator(keep_alive=False), crds=crds) as handle:
        yield handle


@pytest.fixture
def kubeconfig(emulator: EmulatorHandle, tmp_path: Path) -> Path:
    """A kubeconfig for the emulator: contexts `admin` (current), `alice`, `bob`, `carol`;
    each user's bearer token is its name."""
    users = [person.name for person in personas.PEOPLE]
    return emulator.write_kubeconfig(tmp_path / "kubeconfig", users=users)


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Kubectl:
    """Runs the real kubectl against the emulator without blocking the event loop."""

    binary: str
    kubeconfig: Path
    cache_dir: Path

    def argv(self, *args: str, user: str | None = None) -> list[str]:
        context = ["--context", user] if user else []
        return [
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *context,
            *args,
        ]

    async def __call__(
        self,
        *args: str,
        input: str | None = None,
        user: str | None = None,
        check: bool = True,
        time_limit: float = 30,
    ) -> KubectlResult:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args, user=user),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(time_limit):
                out, err = await proc.communicate(input.encode() if input is not None else None)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        result = KubectlResult(proc.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    async def start(self, *args: str, user: str | None = None) -> asyncio.subprocess.Process:
        """A long-running kubectl (e.g. `get -w`); the caller kills it."""
        return await asyncio.create_subprocess_exec(
            *self.argv(*args, user=user),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """`await kubectl("get", "ar", "-n", "prod")`; skipped when kubectl is not installed."""
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        pytest.skip("the real kubectl binary is not installed (set KUBECTL or put it on PATH)")
    return Kubectl(binary, kubeconfig, tmp_path / "kubectl-cache")


@pytest.fixture
def kube_client(emulator: EmulatorHandle) -> Iterator[kubernetes.client.ApiClient]:
    """A `kubernetes` ApiClient bound to the emulator as `admin`. Its calls are blocking:
    run them with `await asyncio.to_thread(api.read_namespace, "default")`."""
    client = kubernetes.client.ApiClient(emulator.kubernetes_configuration())
    yield client
    client.close()


KopfRunner = Callable[..., AbstractAsyncContextManager["asyncio.Task[None]"]]


@pytest.fixture
def kopf_runner(emulator: EmulatorHandle) -> KopfRunner:
    """`async with kopf_runner(registry[, settings], **operator_kwargs):` runs kopf in the
    test's loop against the emulator: a login handler for it is added to the registry,
    standalone (unless `standalone=False`), namespace scanning off, fast cancellation
    polling, cluster-wide unless `namespaces=` is given. Exiting stops kopf and re-raises
    its errors."""

    @contextlib.asynccontextmanager
    async def run(
        registry: kopf.OperatorRegistry,
        settings: kopf.OperatorSettings | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[asyncio.Task[None]]:
        import kopf

        kopf.on.login(registry=registry, id="emulator-login")(
            lambda **_: emulator.connection_info()
        )
        settings = settings if settings is not None else kopf.OperatorSettings()
        settings.scanning.disabled = True
        settings.background.cancellation_polling = 0.1
        kwargs.setdefault("clusterwide", not kwargs.get("namespaces"))
        kwargs.setdefault("standalone", True)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            kopf.operator(
                registry=registry,
                settings=settings,
                stop_flag=stop,
                ready_flag=ready,
                **kwargs,
            )
        )
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            await task  # it failed at start-up: raise why
        try:
            yield task
        finally:
            stop.set()
            await task

    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each tier's time: its tests' set-up, call and tear-down (so the first test of a tier also
    carries the tier's session fixtures: a build, a server's start-up)."""
    seconds: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                path = Path(report.nodeid.split("::")[0])
                tier = path.parts[1] if len(path.parts) > 2 else path.stem
                seconds[tier] = seconds.get(tier, 0.0) + report.duration
    if seconds:
        terminalreporter.write_line(
            "tier times: "
            + ", ".join(
                f"{tier} {s:.1f} s" for tier, s in sorted(seconds.items(), key=lambda x: -x[1])
            )
        )
