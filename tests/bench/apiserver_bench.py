"""What jitgate costs end to end, on a real kube-apiserver (tests/apiserver's binary) with
jitgate's webhook and operator installed as the e2e tier installs them (``e2e.cluster``).

Each figure is measured in the same run with jitgate's webhook configurations installed and
removed, in alternating pairs, with a grant held for every protected action sent:

1. protected pod deletes and ``deployments/scale`` updates per second (8 concurrent clients,
   a fresh TLS connection per request, as the harness sends them), p50/p99, and the ratio;
2. webhook calls per request (the API server's own
   ``apiserver_admission_webhook_admission_duration_seconds_count``) and audit records per
   request (lines appended to the webhook's audit log);
3. the latency jitgate adds to an exec admission: a ``pods/exec`` connect to a pod on a node
   without a kubelet, which is admitted and then fails to connect (the same failure on both
   sides, so the difference is admission);
4. approve → first allowed exec (the operator issues the Grant, the webhook sees it) and
   Grant deleted → first denial, p50/p99;
5. create-Grant-then-act races (a server-side dry-run delete right after its Grant is
   created): the count of false denials.

Everything shares the machine's cores with the API server and both jitgate processes. Prints
only; fails only when it cannot run. Overall bounded by ``TIME_BOUND_S``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from apiserver import build, harness
from chart import render
from e2e import cluster, manifests
from support import objects

from jitgate.core.clock import SYSTEM_CLOCK

NAMESPACE = "prod"
REQUESTS = 200  # per measurement
PAIRS = 3  # alternating installed/removed measurements
CLIENTS = 8
EXECS = 100  # per measurement
REVOCATIONS = 20
APPROVALS = 20
RACES = 1000
TIME_BOUND_S = 900.0
NAMES_PER_ACTION = 64  # the Grant schema's bound
GRANTS = f"/apis/jitgate.dev/v1alpha1/namespaces/{NAMESPACE}/grants"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SCALE = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web/scale"
WEBHOOK_COUNT = "apiserver_admission_webhook_admission_duration_seconds_count{"

Obj = dict[str, Any]
Call = Callable[[], tuple[int, Any]]


class OutOfTime(Exception):
    """The overall time bound is spent: the remaining figures are skipped."""


class Clock:
    def __init__(self, bound: float) -> None:
        self.deadline = time.monotonic() + bound

    def check(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfTime(what)


def _grant(name: str, actions: list[Obj]) -> Obj:
    now = SYSTEM_CLOCK.now()
    return objects.grant(
        name,
        NAMESPACE,
        user="alice",
        actions=actions,
        not_before=now - dt.timedelta(minutes=1),
        expires_at=now + dt.timedelta(hours=1),
        request=name,
        approvals=[objects.approval()],
    )


def _delete_actions(pods: list[str]) -> list[Obj]:
    return [
        {"verb": "delete", "resource": "pods", "names": pods[i : i + NAMES_PER_ACTION]}
        for i in range(0, len(pods), NAMES_PER_ACTION)
    ]


def _create_grant(c: cluster.JitCluster, grant: Obj) -> None:
    status, body = c.api.request("POST", GRANTS, who="jitgate-operator", body=grant)
    if status != 201:
        raise RuntimeError(f"creating Grant {grant['metadata']['name']}: {status} {body}")


def _configurations(c: cluster.JitCluster) -> list[Obj]:
    return render.webhook_configurations_for_url(
        c.webhook_url, c.api.ca.pem, manifests.CHART_VALUES, namespace=manifests.RELEASE_NAMESPACE
    )


def _probe_denied(c: cluster.JitCluster) -> bool:
    """A dry-run delete of the probe pod, which alice holds no grant for."""
    status, _ = c.api.request("DELETE", f"{PODS}/{c.probe_pod}?dryRun=All", who="alice")
    return status == 403


def _until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen in {timeout:.0f} s")
        time.sleep(0.1)


def _install(c: cluster.JitCluster) -> None:
    c.api.apply("admin", *_configurations(c))
    _until("the webhook configurations taking effect", lambda: _probe_denied(c))


def _remove(c: cluster.JitCluster) -> None:
    for config in _configurations(c):
        c.api.kubectl("admin", "delete", config["kind"], config["metadata"]["name"])
    _until("the webhook configurations going away", lambda: not _probe_denied(c))


def _webhook_calls(c: cluster.JitCluster) -> int:
    """Calls of jitgate's webhooks, counted by the API server."""
    status, text = c.api.request("GET", "/metrics", who="admin")
    if status != 200:
        raise RuntimeError(f"the API server's /metrics: {status}")
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in str(text).splitlines()
        if line.startswith(WEBHOOK_COUNT) and ".jitgate.dev" in line
    )


def _audit_records(c: cluster.JitCluster) -> int:
    return sum(
        path.read_bytes().count(b"\n") for path in c.webhook_audit.rglob("*.jsonl")
    )  # fmt: skip


class Run:
    """One measurement: latencies (ms), requests per second, webhook calls and records."""

    def __init__(self, c: cluster.JitCluster, calls: list[Call], ok: set[int], clients: int):
        calls_before, records_before = _webhook_calls(c), _audit_records(c)
        latencies: list[float] = []
        failures: list[tuple[int, Any]] = []

        def timed(call: Call) -> None:
            started = time.perf_counter()
            status, body = call()
            latencies.append((time.perf_counter() - started) * 1000)
            if status not in ok:
                failures.append((status, body))

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(timed, calls))
        self.seconds = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(calls)} failed, e.g. {failures[0]}")
        # The audit writer appends after answering: let the last records land.
        time.sleep(0.5)
        self.calls = _webhook_calls(c) - calls_before
        self.records = _audit_records(c) - records_before
        self.n = len(calls)
        self.latencies = sorted(latencies)

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def percentile(self, share: float) -> float:
        return self.latencies[min(int(len(self.latencies) * share), len(self.latencies) - 1)]


def _pooled(runs: list[Run]) -> tuple[float, float, float, float, float]:
    """Requests per second, p50, p99, webhook calls and audit records per request."""
    latencies = sorted(x for run in runs for x in run.latencies)
    n = sum(run.n for run in runs)
    rate = n / sum(run.seconds for run in runs)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    return rate, p50, p99, sum(r.calls for r in runs) / n, sum(r.records for r in runs) / n


def _print_pair(title: str, on: list[Run], off: list[Run]) -> None:
    rate_on, p50_on, p99_on, calls, records = _pooled(on)
    rate_off, p50_off, p99_off, _, _ = _pooled(off)
    print(f"{title} ({sum(r.n for r in on)} each side, {len(on)} alternating pairs)")
    print(f"  {'':<26} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'jitgate installed':<26} {rate_on:>8.0f} {p50_on:>8.1f} {p99_on:>8.1f}")
    print(f"  {'configurations removed':<26} {rate_off:>8.0f} {p50_off:>8.1f} {p99_off:>8.1f}")
    print(f"  ratio {rate_on / rate_off:.2f}x; webhook calls per request {calls:.2f}, "
          f"audit records per request {records:.2f}")  # fmt: skip


def _alternating(
    c: cluster.JitCluster,
    clock: Clock,
    make: Callable[[int, bool], list[Call]],
    ok: set[int],
    clients: int,
) -> tuple[list[Run], list[Run]]:
    """PAIRS measurements each side, installed first then removed, alternating; the
    configurations are installed again at the end."""
    on: list[Run] = []
    off: list[Run] = []
    for pair in range(PAIRS):
        for installed in (True, False):
            clock.check("alternating measurements")
            (_install if installed else _remove)(c)
            (on if installed else off).append(Run(c, make(pair, installed), ok, clients))
    _install(c)
    return on, off


def _deletes(c: cluster.JitCluster, clock: Clock) -> None:
    def pods(pair: int, installed: bool) -> list[str]:
        return [f"bench-{pair}-{int(installed)}-{i}" for i in range(REQUESTS)]

    every = [pod for pair in range(PAIRS) for side in (True, False) for pod in pods(pair, side)]
    # Unscheduled: a delete removes each at once, no kubelet has to confirm it.
    c.api.apply("admin", *(manifests.pod(NAMESPACE, pod, node=None) for pod in every))
    for pair in range(PAIRS):
        _create_grant(c, _grant(f"bench-deletes-{pair}", _delete_actions(pods(pair, True))))

    def make(pair: int, installed: bool) -> list[Call]:
        return [
            functools.partial(c.api.request, "DELETE", f"{PODS}/{pod}", who="alice")
            for pod in pods(pair, installed)
        ]

    _print_pair(
        "protected pod deletes, a grant held", *_alternating(c, clock, make, {200}, CLIENTS)
    )


def _scales(c: cluster.JitCluster, clock: Clock) -> None:
    c.api.apply("admin", manifests.deployment(NAMESPACE, "web"))
    scale = [{"verb": "scale", "resource": "deployments.apps", "names": ["web"]}]
    _create_grant(c, _grant("bench-scale", scale))

    def body(replicas: int) -> Obj:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {"replicas": replicas},
        }

    def make(_pair: int, _installed: bool) -> list[Call]:
        return [
            functools.partial(c.api.request, "PUT", SCALE, who="alice", body=body(2 + i % 3))
            for i in range(REQUESTS)
        ]

    on, off = _alternating(c, clock, make, {200}, CLIENTS)
    _print_pair("protected deployments/scale updates (PUT), a grant held", on, off)


def _exec(c: cluster.JitCluster, clock: Clock) -> None:
    _create_grant(c, _grant("bench-exec", [{"verb": "exec", "names": [c.probe_pod]}]))
    path = f"{PODS}/{c.probe_pod}/exec?command=true&stdout=true"

    def make(_pair: int, _installed: bool) -> list[Call]:
        return [lambda: c.api.request("POST", path, who="alice") for _ in range(EXECS)]

    # Admitted, then refused: the pod's node has no kubelet (or no upgrade was asked for).
    on, off = _alternating(c, clock, make, {400, 500}, 1)
    _, p50_on, p99_on, calls, _ = _pooled(on)
    _, p50_off, p99_off, _, _ = _pooled(off)
    print(f"exec admission (pods/exec connect, one at a time, {EXECS * PAIRS} each side; "
          "admitted, then no kubelet answers)")  # fmt: skip
    print(f"  installed p50 {p50_on:.1f} ms, p99 {p99_on:.1f} ms; removed p50 {p50_off:.1f} ms, "
          f"p99 {p99_off:.1f} ms")  # fmt: skip
    print(f"  added by jitgate: p50 {p50_on - p50_off:+.1f} ms, p99 {p99_on - p99_off:+.1f} ms; "
          f"webhook calls per exec {calls:.2f}")  # fmt: skip


def _dry_delete(c: cluster.JitCluster, pod: str) -> int:
    status, _ = c.api.request("DELETE", f"{PODS}/{pod}?dryRun=All", who="alice")
    return status


def _allowed(c: cluster.JitCluster, pod: str) -> bool:
    return _dry_delete(c, pod) == 200


def _revocations(c: cluster.JitCluster, clock: Clock) -> None:
    pods = [f"revoked-{i}" for i in range(REVOCATIONS)]
    c.api.apply("admin", *(manifests.pod(NAMESPACE, pod, node=None) for pod in pods))
    samples = []
    for pod in pods:
        clock.check("revocations")
        _create_grant(c, _grant(pod, _delete_actions([pod])))
        _until(f"the grant for {pod} allowing", functools.partial(_allowed, c, pod))
        status, body = c.api.request("DELETE", f"{GRANTS}/{pod}", who="jitgate-operator")
        if status != 200:
            raise RuntimeError(f"deleting Grant {pod}: {status} {body}")
        deleted = time.perf_counter()
        deadline = time.monotonic() + 10
        while _dry_delete(c, pod) != 403:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pod {pod} still deletable 10 s after its Grant went")
        samples.append((time.perf_counter() - deleted) * 1000)
    samples.sort()
    print(f"Grant deleted -> first denial ({REVOCATIONS} grants, polled back to back): "
          f"p50 {samples[len(samples) // 2]:.1f} ms, p99 {samples[-1]:.1f} ms (max)")  # fmt: skip


def _approvals(c: cluster.JitCluster, clock: Clock) -> None:
    pods = [f"approved-{i}" for i in range(APPROVALS)]
    c.create_pods(NAMESPACE, *pods)  # no kubelet: an allowed exec is admitted, then fails
    samples = []
    for pod in pods:
        clock.check("approvals")
        asked = c.jit("alice", "request", "exec", pod, "-n", NAMESPACE, "--for", "10m",
                      "--reason", "bench", "--name", pod)  # fmt: skip
        if asked.returncode != 0:
            raise RuntimeError(f"kubectl jit request: {asked.stderr}")
        c.wait_phase(NAMESPACE, pod, "Pending")
        approved = c.jit("bob", "approve", pod, "-n", NAMESPACE, "--yes")
        if approved.returncode != 0:
            raise RuntimeError(f"kubectl jit approve: {approved.stderr}")
        since = time.perf_counter()
        path = f"{PODS}/{pod}/exec?command=true&stdout=true"
        deadline = time.monotonic() + 30
        while c.api.request("POST", path, who="alice")[0] == 403:
            if time.monotonic() > deadline:
                raise RuntimeError(f"exec into {pod} still denied 30 s after approval")
        samples.append((time.perf_counter() - since) * 1000)
    samples.sort()
    print(f"approve (kubectl jit approve returned) -> first allowed exec ({APPROVALS} requests, "
          f"polled back to back): p50 {samples[len(samples) // 2]:.0f} ms, "
          f"p99 {samples[-1]:.0f} ms (max)")  # fmt: skip


def _races(c: cluster.JitCluster, clock: Clock) -> None:
    pods = [f"raced-{i}" for i in range(RACES)]
    c.api.apply("admin", *(manifests.pod(NAMESPACE, pod, node=None) for pod in pods))
    denied: list[tuple[str, int, str]] = []
    sent = 0
    for pod in pods:
        clock.check("races")
        _create_grant(c, _grant(pod, _delete_actions([pod])))
        status, body = c.api.request("DELETE", f"{PODS}/{pod}?dryRun=All", who="alice")
        sent += 1
        if status != 200:
            message = body.get("message", "") if isinstance(body, dict) else str(body)
            denied.append((pod, status, message[:160]))
    print(f"create-Grant-then-act races: {sent}, false denials: {len(denied)}"
          + (f"; the first: {denied[0]}" if denied else ""))  # fmt: skip


@contextlib.contextmanager
def _jitgate(tmp: Path) -> Iterator[cluster.JitCluster]:
    """The e2e tier's installation on an API server of its own (no controller-manager or
    kwok: nothing here needs them)."""
    binary = build.ensure_binary(build.KUBE_APISERVER).binary
    with (
        harness.start_kube_apiserver(binary, tmp / "kube-apiserver", webhook_client_auth=True)
        as api,
        cluster.install(api, tmp / "jitgate", echo=lambda message: print(f"  ({message})"))
        as c,
    ):  # fmt: skip
        yield c


def main() -> None:
    clock = Clock(TIME_BOUND_S)
    with tempfile.TemporaryDirectory(prefix="jitgate-bench-") as tmp, _jitgate(Path(tmp)) as c:
        print("(everything shares this machine's cores: the API server, the webhook, the "
              "operator and the clients)")  # fmt: skip
        try:
            for figure in (_deletes, _scales, _exec, _approvals, _revocations, _races):
                figure(c, clock)
                c.check_alive()
        except OutOfTime as spent:
            print(f"(time bound of {TIME_BOUND_S:.0f} s spent during {spent}: the rest skipped)")


if __name__ == "__main__":
    main()
