"""The end-to-end tier: jitgate's webhook and operator as local processes in front of a real
kube-apiserver, driven by the real ``kubectl`` (and ``kubectl jit``) as each persona.

Fixture ``jitgate_cluster`` (session): a kube-apiserver of its own (not the smoke tier's
``kube_apiserver``: jitgate's webhooks fail closed, so they would change what other tiers
observe) and a real kube-controller-manager (garbage collector, namespace, workload and
autoscaler controllers: the exempt identities that can act for a user) and kwok acting as
the kubelet of one node (``manifests.KWOK_NODE``: pods on it run, and ``kubectl exec``,
``attach`` and ``port-forward`` reach local processes), with jitgate installed by
``cluster.install``. The API server runs with a tracing configuration and jitgate with
``--apiserver-traces``, the configuration the chart's README recommends. Pods on
``manifests.NODE`` have no kubelet: they stay Pending and a
connection to them fails after admission. It is stopped right after the last
test that uses it, not at the end of the session, and its start-up and run times are
printed. When a test fails, the lines the webhook, the operator and the API server logged
during it are attached to the report.

Skipped with one reason, like the smoke tier, when Go or the module proxy is unavailable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import helm_python as helm
import pytest

# The smoke tier's conftest, for its build fixture (it skips with the reason when Go or the
# module proxy is unavailable) and its terminal output; build.py and harness.py are shared.
from apiserver import conftest as _apiserver_tier
from apiserver import harness
from apiserver.harness import KubeAPIServer, KubeControllerManager, Kwok
from e2e import cluster as cluster_module
from e2e import manifests

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
FIXTURE = "jitgate_cluster"
LOG_LINES = 150  # per process, in a failed test's report

kube_apiserver_binary = _apiserver_tier.kube_apiserver_binary
kube_controller_manager_binary = _apiserver_tier.kube_controller_manager_binary
kwok_binary = _apiserver_tier.kwok_binary


def say(config: pytest.Config, message: str) -> None:
    _apiserver_tier._say(config, f"e2e: {message}")


class ProcessLog(Protocol):
    """A log shown in a failed test's report: a process's, the API server's or the
    controller-manager's."""

    name: str

    def log_size(self) -> int: ...

    def tail(self, lines: int = 80, since: int = 0) -> str: ...


@dataclass
class Tier:
    """The tier's resources, closable early (after its last test) and only once."""

    config: pytest.Config
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    logs: list[ProcessLog] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    ready: float | None = None
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        stopping = time.monotonic()
        self.stack.close()
        now = time.monotonic()
        if self.ready is not None:
            say(
                self.config,
                f"start-up {self.ready - self.started:.2f} s, tests {stopping - self.ready:.2f} s, "
                f"stop {now - stopping:.2f} s, tier total {now - self.started:.2f} s",
            )


TIER = pytest.StashKey[Tier]()
LAST_ITEM = pytest.StashKey[str]()


@dataclass
class _ServerLog:
    """The API server's, the controller-manager's or kwok's log, shown like a process log
    in failed tests."""

    name: str
    server: KubeAPIServer | KubeControllerManager | Kwok

    def log_size(self) -> int:
        try:
            return int(self.server.log_file.stat().st_size)
        except FileNotFoundError:
            return 0

    def tail(self, lines: int = 80, since: int = 0) -> str:
        lines = min(lines, 60)  # they are chatty; the processes' logs say more
        with open(self.server.log_file, "rb") as log:
            log.seek(since)
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def jitgate_cluster(
    request: pytest.FixtureRequest,
    kube_apiserver_binary: Path,
    kube_controller_manager_binary: Path,
    kwok_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cluster_module.JitCluster]:
    """A kube-apiserver, kube-controller-manager and kwok with jitgate installed."""
    config = request.config
    if not Path(harness.KUBECTL).exists():
        pytest.skip(f"the end-to-end tier needs the real kubectl at {harness.KUBECTL}")
    tier = Tier(config)
    config.stash[TIER] = tier
    tmpdir = tmp_path_factory.mktemp("e2e")
    try:
        server = tier.stack.enter_context(
            harness.start_kube_apiserver(
                kube_apiserver_binary,
                tmpdir / "kube-apiserver",
                webhook_client_auth=True,
                front_proxy=True,
                tracing=True,
            )
        )
        tier.logs.append(_ServerLog("kube-apiserver", server))
        say(config, f"kube-apiserver ready at {server.url} in {server.startup_seconds:.2f} s")
        controllers = tier.stack.enter_context(
            harness.start_kube_controller_manager(
                kube_controller_manager_binary, server, tmpdir / "kube-controller-manager"
            )
        )
        tier.logs.append(_ServerLog("kube-controller-manager", controllers))
        say(
            config,
            f"kube-controller-manager ready in {controllers.startup_seconds:.2f} s "
            f"({', '.join(controllers.controllers)})",
        )
        kwok = tier.stack.enter_context(
            harness.start_kwok(kwok_binary, server, tmpdir / "kwok", node=manifests.KWOK_NODE)
        )
        tier.logs.append(_ServerLog("kwok", kwok))
        say(config, f"kwok ready in {kwok.startup_seconds:.2f} s (node {kwok.node}, {kwok.url})")
        cluster = tier.stack.enter_context(
            cluster_module.install(
                server,
                tmpdir / "jitgate",
                kwok=kwok,
                echo=lambda message: say(config, message),
                on_process=tier.logs.append,
            )
        )
    except BaseException:
        tier.close()
        raise
    tier.ready = time.monotonic()
    yield cluster
    tier.close()


@pytest.fixture(scope="module")
def release_cluster(
    kube_apiserver_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cluster_module.HelmCluster]:
    """A kube-apiserver of its own and Helm for it (as cluster-admin, namespace ``jitgate``),
    for real Helm releases of the chart."""
    tmpdir = tmp_path_factory.mktemp("helm-release")
    with (
        harness.start_kube_apiserver(kube_apiserver_binary, tmpdir) as server,
        helm.Config(
            kubeconfig_path=str(server.kubeconfig("admin")),
            namespace=manifests.RELEASE_NAMESPACE,
        ) as config,
    ):
        yield cluster_module.HelmCluster(server, config)


# ------------------------------------------------------------------------------ hooks


def _last_tier_item(session: pytest.Session) -> str:
    stash = session.config.stash
    if LAST_ITEM not in stash:
        users = [
            item.nodeid for item in session.items if FIXTURE in getattr(item, "fixturenames", ())
        ]
        stash[LAST_ITEM] = users[-1] if users else ""
    return stash[LAST_ITEM]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    tier = item.config.stash.get(TIER, None)
    if tier is not None:
        tier.offsets = {log.name: log.log_size() for log in tier.logs}


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the tier's processes and API server once its last test is done."""
    tier = item.config.stash.get(TIER, None)
    if tier is not None and item.nodeid == _last_tier_item(item.session):
        tier.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    tier = item.config.stash.get(TIER, None)
    if report.failed and tier is not None and tier.logs:
        for log in tier.logs:
            since = tier.offsets.get(log.name, 0)
            text = log.tail(LOG_LINES, since=since) if log.log_size() > since else "(nothing new)"
            report.sections.append((f"{log.name} log during this test", text))
    return report
