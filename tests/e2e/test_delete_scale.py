"""`kubectl delete pod` and `kubectl scale deployment` in a protected namespace: denied
without a grant, admitted with one, and audited with what changed."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import pytest
from e2e import manifests
from e2e.cluster import denied_by

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]


def test_delete_pod_needs_a_grant(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "doomed-0", "bystander-0")

    denied = c.kubectl("alice", "delete", "pod", "doomed-0", "-n", "prod", "--wait=false")
    assert denied.returncode == 1
    assert denied.stderr == (
        f"{denied_by('delete')} the request: jitgate denied delete pod doomed-0 in namespace "
        "prod: alice holds no live grant for it. AccessPolicy production requires an approved "
        "grant for it; ask with: kubectl jit request delete pod/doomed-0 -n prod --for 15m "
        '--reason "<why>"\n'
    )
    assert c.get("pod", "doomed-0", "prod")["metadata"].get("deletionTimestamp") is None
    # A server-side dry run is decided the same way, and audited as a dry run.
    dry = c.kubectl("alice", "delete", "pod", "doomed-0", "-n", "prod", "--dry-run=server")
    assert dry.stderr.startswith(denied_by("delete")), dry.stderr
    records = c.records("webhook", "--user", "alice", "--type", "action.denied", "--verb", "delete")
    assert [r.get("dryRun") for r in records if r["action"].get("name") == "doomed-0"] == [
        False,
        True,
    ]

    grant = c.granted("delete", "pod/doomed-0", "--reason", "INC-9: wedged", name="kill-doomed")
    deleted = c.kubectl("alice", "delete", "pod", "doomed-0", "-n", "prod", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == 'pod "doomed-0" deleted\n'
    assert f"Warning: jitgate grant {grant}" in deleted.stderr  # it ends within minutes
    pod = c.get("pod", "doomed-0", "prod")  # no kubelet confirms the graceful deletion
    assert pod is None or pod["metadata"].get("deletionTimestamp"), pod
    # The grant names that pod only.
    other = c.kubectl("alice", "delete", "pod", "bystander-0", "-n", "prod", "--wait=false")
    assert other.stderr.startswith(denied_by("delete")), other.stderr

    (allowed,) = c.records("webhook", "--grant", grant)
    assert allowed["type"] == "action.allowed"
    assert allowed["request"] == "kill-doomed"
    assert {k: allowed["action"][k] for k in ("verb", "resource", "name", "kind")} == {
        "verb": "delete",
        "resource": "pods",
        "name": "doomed-0",
        "kind": "Pod",
    }
    assert allowed["action"]["objectDigest"].startswith("sha256:")
    c.assert_audit_logs_verify()


def evict(c: Any, who: str, pod: str) -> Any:
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "prod"},
    }
    path = f"/api/v1/namespaces/prod/pods/{pod}/eviction"
    return c.kubectl(who, "create", "--raw", path, "-f", "-", input=json.dumps(eviction))


def test_evicting_a_pod_is_a_delete_that_needs_a_grant(jitgate_cluster: Any) -> None:
    # The API server deletes an evicted pod without a DELETE admission review of its own, so
    # the eviction itself must be decided.
    c = jitgate_cluster
    c.create_pods("prod", "evicted-0", "evicted-1")
    denied = evict(c, "alice", "evicted-0")
    assert denied.returncode == 1
    assert denied.stderr.startswith(denied_by("delete")), denied.stderr
    assert "jitgate denied delete pod evicted-0 in namespace prod" in denied.stderr
    assert "kubectl jit request delete pod/evicted-0 -n prod" in denied.stderr
    pod = c.get("pod", "evicted-0", "prod")
    assert pod is not None and pod["metadata"].get("deletionTimestamp") is None

    grant = c.granted("delete", "pod/evicted-0", "--reason", "INC-10: drain", name="evict-0")
    evicted = evict(c, "alice", "evicted-0")
    assert evicted.returncode == 0, evicted.stderr
    pod = c.get("pod", "evicted-0", "prod")
    assert pod is None or pod["metadata"].get("deletionTimestamp"), pod
    assert evict(c, "alice", "evicted-1").stderr.startswith(denied_by("delete"))
    (allowed,) = c.records("webhook", "--grant", grant)
    assert {k: allowed["action"][k] for k in ("verb", "resource", "name", "subresource")} == {
        "verb": "delete",
        "resource": "pods",
        "name": "evicted-0",
        "subresource": "eviction",
    }
    c.assert_audit_logs_verify()


def test_scale_deployment_needs_a_grant(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.apply("admin", manifests.deployment("prod", "web", replicas=2))
    c.apply("admin", manifests.deployment("dev", "web", replicas=2))

    denied = c.kubectl("alice", "scale", "deployment", "web", "-n", "prod", "--replicas=3")
    assert denied.returncode == 1
    assert denied.stderr == (
        f"{denied_by('scale')} the request: jitgate denied scale deployment web in namespace "
        "prod (replicas 2 to 3): alice holds no live grant for it. AccessPolicy production "
        "requires an approved grant for it; ask with: kubectl jit request scale deployment/web "
        '-n prod --replicas 3 --for 15m --reason "<why>"\n'
    )
    # The same change through the Deployment itself is caught too.
    patched = c.kubectl(
        "alice", "patch", "deployment", "web", "-n", "prod", "--type=merge",
        "-p", json.dumps({"spec": {"replicas": 4}}),
    )  # fmt: skip
    assert patched.stderr.startswith(denied_by("scale")), patched.stderr
    # dev is not protected.
    assert (
        c.kubectl("alice", "scale", "deployment", "web", "-n", "dev", "--replicas=5").returncode
        == 0
    )
    assert c.get("deployment", "web", "prod")["spec"]["replicas"] == 2

    grant = c.granted("scale", "deploy/web", "--reason", "traffic spike", name="scale-web")
    scaled = c.kubectl("alice", "scale", "deployment", "web", "-n", "prod", "--replicas=3")
    assert (scaled.returncode, scaled.stdout) == (0, "deployment.apps/web scaled\n"), scaled.stderr
    assert c.get("deployment", "web", "prod")["spec"]["replicas"] == 3
    patched = c.kubectl(
        "alice", "patch", "deployment", "web", "-n", "prod", "--type=merge",
        "-p", json.dumps({"spec": {"replicas": 4}}),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    assert c.get("deployment", "web", "prod")["spec"]["replicas"] == 4

    allowed = c.records("webhook", "--grant", grant)
    assert [
        (r["type"], r["action"]["verb"], r["action"].get("subresource"), r["action"]["replicas"])
        for r in allowed
    ] == [
        ("action.allowed", "scale", "scale", {"old": 2, "new": 3}),
        ("action.allowed", "scale", None, {"old": 3, "new": 4}),
    ]
    assert all(r["action"]["resource"] == "deployments.apps" for r in allowed)
    c.assert_audit_logs_verify()


def test_a_scale_request_states_the_replica_count_the_grant_allows(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.apply("admin", manifests.deployment("prod", "pinned", replicas=2))
    grant = c.granted("scale", "deploy/pinned", "--replicas", "5", "--reason", "INC-40: load",
                      name="scale-pinned")  # fmt: skip
    shown = c.jit("alice", "show", "scale-pinned", "-n", "prod")
    assert "scale deployment/pinned (to 5 replicas)" in shown.stdout, shown.stdout
    other = c.kubectl("alice", "scale", "deployment", "pinned", "-n", "prod", "--replicas=9")
    assert f"grant {grant} allows scaling only to 5 replicas" in other.stderr, other.stderr
    scaled = c.kubectl("alice", "scale", "deployment", "pinned", "-n", "prod", "--replicas=5")
    assert scaled.returncode == 0, scaled.stderr
    assert c.get("deployment", "pinned", "prod")["spec"]["replicas"] == 5


def test_updates_that_keep_the_replicas_are_not_intercepted(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.apply("admin", manifests.deployment("prod", "api", replicas=2))

    labelled = c.kubectl(
        "alice", "patch", "deployment", "api", "-n", "prod", "--type=merge",
        "-p", json.dumps({"metadata": {"labels": {"tier": "api"}}}),
    )  # fmt: skip
    assert labelled.returncode == 0, labelled.stderr
    image = c.kubectl("admin", "set", "image", "deployment/api", "-n", "prod", "app=app:2")
    assert image.returncode == 0, image.stderr


def test_one_kubectl_delete_is_one_record_however_often_it_is_reviewed(
    jitgate_cluster: Any,
) -> None:
    # A DELETE is validated against the API server's cached object and again against the
    # stored one (graceful deletion, retries on conflict): one user request, one record.
    c = jitgate_cluster
    c.create_pods("prod", "once-deleted-0", "once-refused-0")
    grant = c.granted("delete", "pod/once-deleted-0", "--reason", "INC-12", name="kill-once")
    before = c.webhook_reviews("delete.actions.jitgate.dev")

    deleted = c.kubectl("alice", "delete", "pod", "once-deleted-0", "-n", "prod", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    refused = c.kubectl("alice", "delete", "pod", "once-refused-0", "-n", "prod", "--wait=false")
    assert refused.stderr.startswith(denied_by("delete")), refused.stderr

    reviews = c.webhook_reviews("delete.actions.jitgate.dev") - before
    assert reviews >= 2, reviews
    assert len(c.records("webhook", "--grant", grant)) == 1
    denied = c.records("webhook", "--user", "alice", "--type", "action.denied", "--verb", "delete")
    assert [r["action"]["name"] for r in denied].count("once-refused-0") == 1
    print(f"{reviews} delete webhook calls for 2 kubectl deletes, 2 audit records")


CONTENDING_CLIENTS = 8
EVENTS_WAIT_S = 30.0
SCALES_EACH = 20  # bounded: 160 requests in all


def _completed_events(c: Any, sent: int) -> list[Any]:
    """alice's scales of `contended` in the API server's audit log, once all `sent` are
    there (it writes a request's event as the request completes, after the answer)."""
    deadline = time.monotonic() + EVENTS_WAIT_S
    while True:
        events = [
            event
            for event in c.api.audit_events()
            if event.subresource == "scale" and event.name == "contended"
            and event.user == "alice" and event.code is not None
        ]  # fmt: skip
        if len(events) >= sent or time.monotonic() > deadline:
            assert len(events) == sent, f"{len(events)} events for {sent} requests"
            return events
        time.sleep(0.1)


def test_a_contended_scale_is_one_record_per_user_request(jitgate_cluster: Any) -> None:
    # Eight clients scaling one workload at once: the API server validates a scale again
    # after each write conflict, with a review uid of its own each time. Its trace id
    # (the tier's API server runs with a tracing configuration, jitgate with
    # --apiserver-traces) makes every try of one user request one record, and the API
    # server's own audit log, which names the record each request was allowed by, agrees.
    # Each request asks for a count of its own, so none lands on the count already there
    # (which the chart keeps from the webhook: no record, threat model 3.11). A StatefulSet
    # that makes its pods one at a time, each waiting for the last to be Ready (none is:
    # no node runs them), so that high counts make one pod.
    c = jitgate_cluster
    workload = manifests.statefulset("prod", "contended", replicas=1)
    workload["spec"]["podManagementPolicy"] = "OrderedReady"
    c.apply("admin", workload)
    grant = c.granted("scale", "statefulset/contended", "--reason", "INC-51: load",
                      name="contended")  # fmt: skip
    before = c.webhook_reviews("scale.actions.jitgate.dev")
    path = "/apis/apps/v1/namespaces/prod/statefulsets/contended/scale"

    def scale(client: int) -> list[int]:
        statuses = []
        for n in range(SCALES_EACH):
            body = {
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "contended", "namespace": "prod"},
                "spec": {"replicas": 2 + client * SCALES_EACH + n},
            }  # fmt: skip
            statuses.append(c.api.request("PUT", path, who="alice", body=body)[0])
        return statuses

    with concurrent.futures.ThreadPoolExecutor(CONTENDING_CLIENTS) as pool:
        statuses = [s for each in pool.map(scale, range(CONTENDING_CLIENTS)) for s in each]
    assert statuses == [200] * CONTENDING_CLIENTS * SCALES_EACH
    calls = c.webhook_reviews("scale.actions.jitgate.dev") - before

    records = c.records("webhook", "--grant", grant)
    assert {r["type"] for r in records} == {"action.allowed"}
    recorded = {(r["writer"], r["seq"]) for r in records}
    events = _completed_events(c, len(statuses))
    named = [event.record_ref() for event in events]
    # Each request that reached jitgate names one record, no two the same, and no record is
    # left that no request names (each try recorded alone would be one).
    reached = [ref for ref in named if ref is not None]
    assert len(reached) == len(set(reached)) == len(recorded)
    assert set(reached) == recorded
    # The API server did try again: more calls than requests that reached jitgate.
    assert calls > len(recorded), (calls, len(recorded))
    print(f"{len(events)} contended scales, {calls} webhook calls, {len(recorded)} records")
