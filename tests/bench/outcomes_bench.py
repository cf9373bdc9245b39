"""What deciding outcomes costs, on a real kube-apiserver (tests/apiserver's binary).

1. Routing share: a realistic mix of writes in a protected namespace (label edits, status
   updates, image rollouts through a Deployment, scaling through grants) is sent with kubectl
   while the chart's webhook configurations point at a recording webhook; the share of writes
   that reach it is printed with the chart's CEL matchConditions on and, as the baseline in
   the same run, off.
2. Decision latency of the paths that read the cluster while the review waits (an autoscaler
   on a protected Deployment: one read of its scale; a protected namespace's delete: a
   metadata-only list per protected resource; a label change ending protection: no read),
   against a direct `kubectl scale` decision, all through `AdmissionService.validate` with
   the reads going to the real API server and the audit appends discarded (the fsync is
   `audit_bench`'s figure).

Targets: with matchConditions, at most the scaling writes (10% of the mix) reach the webhook;
an autoscaler or a namespace delete is decided in p99 < 50 ms with 20 pods in the namespace.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from apiserver import build, harness
from apiserver.recorder import Recorder
from bench.quantiles import nearest_rank
from chart import render
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.lookups import ApiReader
from jitgate.webhook.review import parse_review
from jitgate.webhook.server import kubernetes_configuration
from jitgate.webhook.service import AdmissionService
from kubernetes import client as k8s
from support import objects, reviews

from jitgate.audit.model import AuditRecord
from jitgate.core.events import AuditEvent
from jitgate.core.policy import Exemptions
from jitgate.kube import load_credentials

NAMESPACE = "bench"
PROTECTED = {"jitgate.dev/protected": "true"}
IMAGE = "registry.invalid/app:{}"
PODS = 20
ROUNDS = 4  # of the mix; each round is 10 writes
DECISIONS = 300  # per path
TARGET_SHARE = 0.10
TARGET_P99_MS = 50.0


class _Discard:
    """An audit sink that keeps nothing: the latency measured is the decision's own."""

    async def append(self, event: AuditEvent) -> AuditRecord:
        stored = {"v": 1, "writer": "bench", "seq": 0, "time": "", "prev": "", "hash": ""}
        return AuditRecord.of_event(event, stored)


def _workload() -> list[dict[str, Any]]:
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": IMAGE.format(1)}]},
    }
    meta = {"namespace": NAMESPACE, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", **meta},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": template},
    }
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"web-{i}", **meta},
            "spec": {"containers": [{"name": "app", "image": IMAGE.format(1)}]},
        }
        for i in range(PODS)
    ]
    return [deployment, *pods]


def _mix(round_: int) -> list[tuple[str, ...]]:
    """Ten writes as a protected namespace sees them: four label edits, four status updates,
    one rollout through the Deployment, one scale (under a grant)."""
    n = NAMESPACE
    status = json.dumps({"status": {"message": f"round {round_}"}})
    return [
        ("label", "--overwrite", "pod", "web-0", "-n", n, f"round={round_}"),
        ("label", "--overwrite", "pod", "web-1", "-n", n, f"round={round_}"),
        ("label", "--overwrite", "deployment", "web", "-n", n, f"round={round_}"),
        ("annotate", "--overwrite", "pod", "web-2", "-n", n, f"note={round_}"),
        *(
            ("patch", "pod", f"web-{i}", "-n", n, "--subresource=status", "--type=merge", "-p",
             status)
            for i in range(3)
        ),
        ("patch", "deployment", "web", "-n", n, "--subresource=status", "--type=merge", "-p",
         json.dumps({"status": {"observedGeneration": round_}})),
        ("set", "image", "deployment/web", f"app={IMAGE.format(round_ + 2)}", "-n", n),
        ("scale", "deployment", "web", f"--replicas={3 + round_ % 2 + 1}", "-n", n),
    ]  # fmt: skip


def _routing_share(api: harness.KubeAPIServer, recorder: Recorder, cel: bool) -> float:
    values = {"webhook": {"failurePolicy": "Ignore", "matchConditions": {"enabled": cel}}}
    configurations = render.webhook_configurations_for_url(recorder.url, api.ca.pem, values)
    api.apply("admin", *configurations)
    try:
        # Until effective (an informer carries them): a routed scale shows up.
        deadline = time.monotonic() + 30
        while not recorder.during(
            lambda: api.kubectl("admin", "scale", "deployment", "web", "-n", NAMESPACE,
                                f"--replicas={int(time.monotonic()) % 3 + 2}", check=True)
        ):  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError("the chart's webhook configurations never took effect")
        writes = seen = 0
        for round_ in range(ROUNDS):
            for args in _mix(round_):
                reached = recorder.during(lambda args=args: api.kubectl("admin", *args, check=True))
                writes += 1
                seen += bool(reached)
        return seen / writes
    finally:
        for config in configurations:
            api.kubectl("admin", "delete", config["kind"], config["metadata"]["name"])


def _service(api: harness.KubeAPIServer, client: k8s.ApiClient) -> AdmissionService:
    cache = ClusterCache()
    cache.replace("namespaces", [{"metadata": {"name": NAMESPACE, "labels": PROTECTED}}])
    policy = objects.policy(namespaces=objects.BY_PROTECTED_LABEL)
    cache.replace("accesspolicies", [policy])
    cache.replace("accessrequests", [])
    cache.replace("grants", [])
    return AdmissionService(
        cache=cache, audit=_Discard(), exemptions=Exemptions(), reader=ApiReader(client)
    )


async def _latency(service: AdmissionService, body: dict[str, Any]) -> tuple[float, float]:
    # Each review a uid of its own, as the API server's: a repeated uid is answered from the
    # webhook's memo, which would flatter the direct decision.
    raws = []
    for i in range(DECISIONS):
        body["request"]["uid"] = str(uuid.UUID(int=i + 1))
        raws.append(json.dumps(body).encode())
    samples = []
    for raw in raws:
        started = time.perf_counter_ns()
        answer = await service.validate(parse_review(raw))
        samples.append(time.perf_counter_ns() - started)
        assert not answer.allowed, answer  # each path is decided (and refused: no grant)
    samples.sort()
    return nearest_rank(samples, 0.5) / 1e6, nearest_rank(samples, 0.99) / 1e6


def main() -> None:
    binary = build.ensure_binary(build.KUBE_APISERVER).binary
    with (
        tempfile.TemporaryDirectory(prefix="jitgate-bench-") as tmp,
        harness.start_kube_apiserver(binary, Path(tmp)) as api,
    ):
        api.create_namespace(NAMESPACE, labels=PROTECTED)
        api.apply("admin", *_workload())
        recorder = Recorder(api)
        try:
            shares = {cel: _routing_share(api, recorder, cel) for cel in (True, False)}
        finally:
            recorder.server.shutdown()
        print(f"writes in a protected namespace reaching the webhook ({ROUNDS * 10} writes: "
              "40% label edits, 40% status updates, 10% rollouts, 10% scaling)")  # fmt: skip
        print(f"  with the chart's matchConditions: {shares[True]:>6.1%} "
              f"(target <= {TARGET_SHARE:.0%})")  # fmt: skip
        print(f"  without (rules only, baseline):   {shares[False]:>6.1%}")
        client = k8s.ApiClient(kubernetes_configuration(load_credentials(api.kubeconfig("admin"))))
        try:
            service = _service(api, client)
            paths = {
                "direct scale (no read, baseline)": reviews.scale_review(
                    "web", 3, 1, namespace=NAMESPACE
                ),
                "autoscaler on a Deployment (1 read)": reviews.autoscaler_review(
                    reviews.autoscaler("pin", "web", namespace=NAMESPACE)
                ),
                f"namespace delete ({PODS} pods, 2 lists)": reviews.namespace_delete_review(
                    NAMESPACE
                ),
                "protection label removed (no read)": reviews.namespace_update_review(
                    PROTECTED, {}, NAMESPACE
                ),
            }
            print(f"\n{'decision, through AdmissionService.validate':<44} "
                  f"{'p50 ms':>8} {'p99 ms':>8} {'vs direct':>10}")  # fmt: skip
            figures = {name: asyncio.run(_latency(service, body)) for name, body in paths.items()}
        finally:
            client.close()
        base = next(iter(figures.values()))[0]
        for name, (p50, p99) in figures.items():
            print(f"{name:<44} {p50:>8.2f} {p99:>8.2f} {p50 / base:>9.1f}x")
        print(f"(target: autoscaler and namespace delete p99 < {TARGET_P99_MS:.0f} ms)")


if __name__ == "__main__":
    main()
