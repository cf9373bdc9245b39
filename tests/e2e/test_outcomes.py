"""Outcomes, not verbs: every path an attacker found to a protected outcome, tried with the
real kubectl on the real API server while the real kube-controller-manager runs.

Each test shows, for one path of docs/threat-model.md, that the outcome does not happen
without a grant, happens with one, and leaves the records a reviewer needs. "Does not
happen" is observed after the controllers had their chance: the same edit on an unprotected
twin (namespace ``dev`` or ``outcomes-dev``) is waited for until its controller acted, then
the protected original is checked. A path jitgate does not decide yet gets its test marked
``xfail(strict=True)``, which flips, and must lose its mark, when its decision lands.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
from e2e import manifests
from e2e.cluster import JitCluster
from support import objects

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

# An owner that never existed: the garbage collector deletes whatever names it.
MISSING_OWNER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "name": "nobody",
    "uid": "00000000-0000-4000-8000-000000000000",
}
WAIT_S = 60.0  # controllers act within seconds; this only bounds a failure


# ------------------------------------------------------------------------------ helpers


def refused(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """kubectl was refused by one of jitgate's webhooks, saying each of ``phrases``."""
    assert proc.returncode == 1, f"not refused (exit {proc.returncode}): {proc.stdout}"
    assert re.match(
        # kubectl create -f names the input it failed on before the server's answer; kubectl
        # set image words the refusal its own way.
        r"(Error from server \(Forbidden\): (error when creating \"STDIN\": )?|"
        r"error: failed to patch image update to pod template: )admission webhook "
        r'"[a-z.]+\.jitgate\.dev" denied the request: jitgate denied ',
        proc.stderr,
    ), proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr


def wait_for(c: JitCluster, condition: str, *target: str, namespace: str | None = None) -> None:
    """``kubectl wait --for=CONDITION TARGET`` (a watch) as admin; fails when it does not
    come. ``target`` is ``kind/name`` or ``kind -l selector``."""
    where = ["-n", namespace] if namespace else []
    proc = c.wait("admin", f"--for={condition}", *target, *where, timeout=WAIT_S)
    assert proc.returncode == 0, f"{target} in {namespace}: no {condition}: {proc.stderr}"


def pods_gone(c: JitCluster, app: str, namespace: str) -> None:
    """Until no pod of ``app`` is left (kubectl wait says so, or finds none to wait for)."""
    proc = c.wait(
        "admin", "--for=delete", "pods", "-l", f"app={app}", "-n", namespace, timeout=WAIT_S
    )
    assert proc.returncode == 0 or "no matching resources found" in proc.stderr, proc.stderr
    assert pod_names(c, namespace, app) == []


def pod_names(c: JitCluster, namespace: str, app: str) -> list[str]:
    """The pods of ``app`` that exist and are not being deleted."""
    out = c.ok("admin", "get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    return sorted(
        pod["metadata"]["name"]
        for pod in json.loads(out)["items"]
        if not pod["metadata"].get("deletionTimestamp")
    )


def existing(c: JitCluster, kind: str, name: str, namespace: str | None = None) -> Any:
    """The object as admin; fails when it does not exist."""
    obj = c.get(kind, name, namespace)
    assert obj is not None, f"{kind} {name} in {namespace} is gone"
    return obj


def create(c: JitCluster, who: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return c.kubectl(who, "create", "-f", "-", input=json.dumps(obj))


def request_any(c: JitCluster, name: str, namespace: str, *actions: dict[str, Any]) -> str:
    """alice asks (through the API: the plugin names objects) for ``actions``; bob approves."""
    request = objects.access_request(
        name, namespace, actions=list(actions), duration="3m", reason="INC-12: decommission"
    )
    asked = create(c, "alice", request)
    assert asked.returncode == 0, asked.stderr
    return c.approved(name, namespace)


def allowed_records(c: JitCluster, grant: str) -> list[dict[str, Any]]:
    records = c.records("webhook", "--grant", grant)
    assert records, f"no record names grant {grant}"
    assert {r["type"] for r in records} == {"action.allowed"}
    return records


def denied_records(c: JitCluster, name: str) -> list[dict[str, Any]]:
    """alice's refused actions on objects called ``name``, oldest first."""
    records = c.records("webhook", "--user", "alice", "--type", "action.denied")
    return [r for r in records if r["action"].get("name") == name]


def what(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: record["action"].get(key) for key in keys}


# ------------------------------------------------------------------- 2.4 garbage collection


def test_pointing_owner_references_at_a_missing_owner_is_a_delete(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.deployment(namespace, "orphaned", replicas=3))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.replicas}=3", "deployment/orphaned", namespace=namespace)
    owner = json.dumps({"metadata": {"ownerReferences": [MISSING_OWNER]}})
    patch = ("patch", "deployment", "orphaned", "--type=merge", "-p", owner)
    refusal = (
        "jitgate denied delete deployment orphaned in namespace prod",
        "kubectl jit request delete deployment/orphaned -n prod",
    )

    refused(c.kubectl("alice", *patch, "-n", "prod", "--dry-run=server"), *refusal)
    refused(c.kubectl("alice", *patch, "-n", "prod"), *refusal)
    # The same edit where nothing is protected: the garbage collector deletes it all.
    c.ok("alice", *patch, "-n", "dev")
    wait_for(c, "delete", "deployment/orphaned", namespace="dev")
    pods_gone(c, "orphaned", "dev")
    prod = existing(c, "deployment", "orphaned", "prod")
    assert not prod["metadata"].get("deletionTimestamp")
    assert "ownerReferences" not in prod["metadata"]
    assert len(pod_names(c, "prod", "orphaned")) == 3
    assert [(r.get("dryRun"), r["action"].get("via")) for r in denied_records(c, "orphaned")] == [
        (True, "metadata.ownerReferences"),
        (False, "metadata.ownerReferences"),
    ]

    grant = c.granted("delete", "deploy/orphaned", "--reason", "INC-11: retire", name="retire")
    c.ok("alice", *patch, "-n", "prod")
    wait_for(c, "delete", "deployment/orphaned", namespace="prod")
    pods_gone(c, "orphaned", "prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via") == {
        "verb": "delete",
        "resource": "deployments.apps",
        "name": "orphaned",
        "via": "metadata.ownerReferences",
    }
    c.assert_audit_logs_verify()


# ------------------------------------------------------------------------- 3.3 autoscalers


def test_an_autoscaler_on_a_protected_deployment_is_a_scale(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.deployment(namespace, "autoscaled", replicas=3))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.replicas}=3", "deployment/autoscaled", namespace=namespace)

    def pin(namespace: str) -> dict[str, Any]:
        return manifests.autoscaler(namespace, "autoscaled", "autoscaled", low=1, high=1)

    refused(
        create(c, "alice", pin("prod")),
        "jitgate denied scale deployment autoscaled in namespace prod (replicas 3 to 1)",
        "kubectl jit request scale deployment/autoscaled -n prod",
    )
    # Unprotected, the HPA controller forces its bounds at once (it needs no metrics for it).
    assert create(c, "alice", pin("dev")).returncode == 0
    wait_for(c, "jsonpath={.status.replicas}=1", "deployment/autoscaled", namespace="dev")
    assert c.get("horizontalpodautoscaler", "autoscaled", "prod") is None
    assert existing(c, "deployment", "autoscaled", "prod")["spec"]["replicas"] == 3
    assert len(pod_names(c, "prod", "autoscaled")) == 3
    (denied,) = denied_records(c, "autoscaled")
    assert what(denied, "verb", "resource", "replicas", "via") == {
        "verb": "scale",
        "resource": "deployments.apps",
        "replicas": {"old": 3, "new": 1},
        "via": "horizontalpodautoscalers.autoscaling/autoscaled",
    }

    grant = c.granted("scale", "deploy/autoscaled", "--reason", "night mode", name="pin-one")
    assert create(c, "alice", pin("prod")).returncode == 0
    wait_for(c, "jsonpath={.status.replicas}=1", "deployment/autoscaled", namespace="prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "replicas", "via") == {
        "verb": "scale",
        "resource": "deployments.apps",
        "name": "autoscaled",
        "replicas": {"old": 3, "new": 1},
        "via": "horizontalpodautoscalers.autoscaling/autoscaled",
    }
    c.assert_audit_logs_verify()


# --------------------------------------------------------------- 3.4 StatefulSet ordinals


def test_moving_statefulset_ordinals_is_a_scale(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.statefulset(namespace, "ordered", replicas=2))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.replicas}=2", "statefulset/ordered", namespace=namespace)
    ordinals = json.dumps({"spec": {"ordinals": {"start": 5}}})
    move = ("patch", "statefulset", "ordered", "--type=merge", "-p", ordinals)

    refused(
        c.kubectl("alice", *move, "-n", "prod"),
        "jitgate denied scale statefulset ordered in namespace prod",
        "kubectl jit request scale statefulset/ordered -n prod",
    )
    # spec.replicas stays 2, yet the controller deletes every replica outside 5..6.
    c.ok("alice", *move, "-n", "dev")
    wait_for(c, "delete", "pod/ordered-0", namespace="dev")
    wait_for(c, "delete", "pod/ordered-1", namespace="dev")
    assert pod_names(c, "prod", "ordered") == ["ordered-0", "ordered-1"]
    assert "ordinals" not in existing(c, "statefulset", "ordered", "prod")["spec"]

    grant = c.granted("scale", "sts/ordered", "--reason", "renumber", name="renumber")
    c.ok("alice", *move, "-n", "prod")
    wait_for(c, "delete", "pod/ordered-0", namespace="prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via") == {
        "verb": "scale",
        "resource": "statefulsets.apps",
        "name": "ordered",
        "via": "spec.ordinals.start",
    }
    c.assert_audit_logs_verify()


# ---------------------------------------------------------- 3.5 and 2.10 ReplicationControllers


def test_replication_controllers_are_scaled_and_deleted_with_grants(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.replication_controller(namespace, "legacy", replicas=2))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.replicas}=2", "rc/legacy", namespace=namespace)
    scale = ("scale", "rc", "legacy", "--replicas=1")
    delete = ("delete", "rc", "legacy", "--wait=false")

    refused(
        c.kubectl("alice", *scale, "-n", "prod"),
        "jitgate denied scale replicationcontroller legacy in namespace prod (replicas 2 to 1)",
        "kubectl jit request scale replicationcontroller/legacy -n prod",
    )
    refused(
        c.kubectl("alice", *delete, "-n", "prod"),
        "jitgate denied delete replicationcontroller legacy in namespace prod",
        "kubectl jit request delete replicationcontroller/legacy -n prod",
    )
    c.ok("alice", *scale, "-n", "dev")
    wait_for(c, "jsonpath={.status.replicas}=1", "rc/legacy", namespace="dev")
    c.ok("alice", *delete, "-n", "dev")
    pods_gone(c, "legacy", "dev")  # the garbage collector removed the RC's pods
    assert existing(c, "rc", "legacy", "prod")["spec"]["replicas"] == 2
    assert len(pod_names(c, "prod", "legacy")) == 2

    scaling = c.granted("scale", "rc/legacy", "--reason", "shrink", name="shrink-legacy")
    c.ok("alice", *scale, "-n", "prod")
    wait_for(c, "jsonpath={.status.replicas}=1", "rc/legacy", namespace="prod")
    deleting = c.granted("delete", "rc/legacy", "--reason", "retire", name="retire-legacy")
    c.ok("alice", *delete, "-n", "prod")
    pods_gone(c, "legacy", "prod")
    (scaled,) = allowed_records(c, scaling)
    (deleted,) = allowed_records(c, deleting)
    assert what(scaled, "verb", "resource", "name", "subresource", "replicas") == {
        "verb": "scale",
        "resource": "replicationcontrollers",
        "name": "legacy",
        "subresource": "scale",
        "replicas": {"old": 2, "new": 1},
    }
    assert what(deleted, "verb", "resource", "name") == {
        "verb": "delete",
        "resource": "replicationcontrollers",
        "name": "legacy",
    }
    c.assert_audit_logs_verify()


# -------------------------------------------------------- 1.6 and 2.9 edits of a live pod


def test_edits_that_end_or_replace_a_live_pod_are_a_delete(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    c.create_pods("prod", "live-0")
    c.create_pods("dev", "live-0")
    for namespace in ("prod", "dev"):
        c.api.set_pod_phase(namespace, "live-0")
    kill = json.dumps({"spec": {"activeDeadlineSeconds": 1}})
    deadline = ("patch", "pod", "live-0", "--type=merge", "-p", kill)
    image = ("set", "image", "pod/live-0", "app=registry.invalid/attacker:1")
    refusal = (
        "jitgate denied delete pod live-0 in namespace prod",
        "kubectl jit request delete pod/live-0 -n prod",
    )

    refused(c.kubectl("alice", *deadline, "-n", "prod"), *refusal)
    refused(c.kubectl("alice", *image, "-n", "prod"), *refusal)
    # Unprotected, both edits land: the kubelet would kill the pod, or restart it as the
    # attacker's image.
    c.ok("alice", *deadline, "-n", "dev")
    c.ok("alice", *image, "-n", "dev")
    twin = existing(c, "pod", "live-0", "dev")["spec"]
    assert (twin["activeDeadlineSeconds"], twin["containers"][0]["image"]) == (
        1,
        "registry.invalid/attacker:1",
    )
    spec = existing(c, "pod", "live-0", "prod")["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert spec["containers"][0]["image"] == "registry.invalid/app:1"
    assert [r["action"].get("via") for r in denied_records(c, "live-0")] == [
        "spec.activeDeadlineSeconds",
        "spec.containers[app].image",
    ]

    grant = c.granted("delete", "pod/live-0", "--reason", "INC-13: replace", name="replace-live")
    c.ok("alice", *deadline, "-n", "prod")
    c.ok("alice", *image, "-n", "prod")
    allowed = allowed_records(c, grant)
    assert [what(r, "verb", "resource", "name", "via") for r in allowed] == [
        {"verb": "delete", "resource": "pods", "name": "live-0", "via": via}
        for via in ("spec.activeDeadlineSeconds", "spec.containers[app].image")
    ]
    c.assert_audit_logs_verify()


# ---------------------------------------------------- 2.5 owners that are not themselves listed


def test_deleting_an_unlisted_owner_is_a_delete_of_its_protected_dependents(
    jitgate_cluster: JitCluster,
):
    c = jitgate_cluster
    # The policy lists pods, not ConfigMaps; any object can own others.
    for namespace in ("prod", "dev"):
        for owner, pod in (("tenant-owner", "owned-0"), ("kept-owner", "kept-0")):
            c.apply("admin", manifests.config_map(namespace, owner))
            owning = existing(c, "configmap", owner, namespace)
            c.apply("admin", manifests.owned(manifests.pod(namespace, pod, node=None), owning))
    delete = ("delete", "configmap", "tenant-owner", "--wait=false")

    refused(
        c.kubectl("alice", *delete, "-n", "prod"),
        "jitgate denied delete pod owned-0 in namespace prod",
        "kubectl jit request delete pod/owned-0 -n prod",
    )
    # Unprotected, the garbage collector removes the dependent with its owner.
    c.ok("alice", *delete, "-n", "dev")
    pods_gone(c, "owned-0", "dev")
    assert existing(c, "configmap", "tenant-owner", "prod")
    assert pod_names(c, "prod", "owned-0") == ["owned-0"]
    (denied,) = denied_records(c, "owned-0")
    assert what(denied, "verb", "resource", "via") == {
        "verb": "delete",
        "resource": "pods",
        "via": "configmaps/tenant-owner",
    }
    # Orphan propagation removes only the owner: no grant, and the pod stays.
    # kubectl waits until the owner is gone, after the collector released its dependents.
    c.ok("alice", "delete", "configmap", "kept-owner", "-n", "prod", "--cascade=orphan")
    assert "ownerReferences" not in existing(c, "pod", "kept-0", "prod")["metadata"]

    grant = c.granted("delete", "pod/owned-0", "--reason", "INC-25: retire", name="retire-owned")
    c.ok("alice", *delete, "-n", "prod")
    pods_gone(c, "owned-0", "prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via") == {
        "verb": "delete",
        "resource": "pods",
        "name": "owned-0",
        "via": "configmaps/tenant-owner",
    }
    c.assert_audit_logs_verify()


# ----------------------------------------------------------- 1.7 a resize that restarts


def test_a_resize_that_restarts_a_container_is_a_delete_of_the_pod(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.resizable_pod(namespace, "sized-0"))
        c.api.set_pod_phase(namespace, "sized-0")

    def resize(cpu: str, memory: str) -> tuple[str, ...]:
        resources = {"requests": {"cpu": cpu, "memory": memory}}
        patch = json.dumps({"spec": {"containers": [{"name": "app", "resources": resources}]}})
        return ("patch", "pod", "sized-0", "--subresource=resize", "-p", patch)

    refused(
        c.kubectl("alice", *resize("100m", "128Mi"), "-n", "prod"),
        "jitgate denied delete pod sized-0 in namespace prod",
        "kubectl jit request delete pod/sized-0 -n prod",
    )
    # Unprotected, the resize lands: the kubelet would restart the container for it.
    c.ok("alice", *resize("100m", "128Mi"), "-n", "dev")
    assert existing(c, "pod", "sized-0", "dev")["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"}
    }
    # cpu resizes in place (NotRequired): nothing restarts, nothing to decide.
    c.ok("alice", *resize("200m", "64Mi"), "-n", "prod")
    requests = existing(c, "pod", "sized-0", "prod")["spec"]["containers"][0]["resources"]
    assert requests == {"requests": {"cpu": "200m", "memory": "64Mi"}}
    (denied,) = denied_records(c, "sized-0")
    assert what(denied, "subresource", "via") == {
        "subresource": "resize",
        "via": "spec.containers[app].resources",
    }

    grant = c.granted("delete", "pod/sized-0", "--reason", "INC-14: more memory", name="resize")
    c.ok("alice", *resize("200m", "128Mi"), "-n", "prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "subresource", "via") == {
        "verb": "delete",
        "resource": "pods",
        "name": "sized-0",
        "subresource": "resize",
        "via": "spec.containers[app].resources",
    }
    c.assert_audit_logs_verify()


# --------------------------------------------------------------------------- 2.8 and 3.6 Jobs


def test_a_ttl_on_a_finished_job_is_a_delete_of_the_job(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.job(namespace, "report"))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.active}=1", "job/report", namespace=namespace)
        (pod,) = pod_names(c, namespace, "report")
        c.api.set_pod_phase(namespace, pod, "Succeeded")
    for namespace in ("prod", "dev"):
        wait_for(c, "condition=Complete", "job/report", namespace=namespace)
    ttl = ("patch", "job", "report", "--type=merge", "-p", '{"spec":{"ttlSecondsAfterFinished":0}}')
    refusal = (
        "jitgate denied delete job report in namespace prod",
        "kubectl jit request delete job/report -n prod",
    )

    refused(c.kubectl("alice", *ttl, "-n", "prod", "--dry-run=server"), *refusal)
    refused(c.kubectl("alice", *ttl, "-n", "prod"), *refusal)
    # Unprotected, the TTL controller deletes the finished Job at once.
    c.ok("alice", *ttl, "-n", "dev")
    wait_for(c, "delete", "job/report", namespace="dev")
    assert "ttlSecondsAfterFinished" not in existing(c, "job", "report", "prod")["spec"]
    assert [(r.get("dryRun"), r["action"].get("via")) for r in denied_records(c, "report")] == [
        (True, "spec.ttlSecondsAfterFinished"),
        (False, "spec.ttlSecondsAfterFinished"),
    ]

    grant = c.granted("delete", "job/report", "--reason", "INC-15: clean up", name="report-ttl")
    c.ok("alice", *ttl, "-n", "prod")
    wait_for(c, "delete", "job/report", namespace="prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via") == {
        "verb": "delete",
        "resource": "jobs.batch",
        "name": "report",
        "via": "spec.ttlSecondsAfterFinished",
    }
    c.assert_audit_logs_verify()


def test_suspending_a_job_or_lowering_its_parallelism_is_a_scale(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.job(namespace, "batch", parallelism=2, completions=4))
    for namespace in ("prod", "dev"):
        wait_for(c, "jsonpath={.status.active}=2", "job/batch", namespace=namespace)

    def patch(spec: dict[str, Any]) -> tuple[str, ...]:
        return ("patch", "job", "batch", "--type=merge", "-p", json.dumps({"spec": spec}))

    refused(
        c.kubectl("alice", *patch({"suspend": True}), "-n", "prod"),
        "jitgate denied scale job batch in namespace prod (replicas 2 to 0)",
        "kubectl jit request scale job/batch -n prod",
    )
    refused(
        c.kubectl("alice", *patch({"parallelism": 1}), "-n", "prod"),
        "jitgate denied scale job batch in namespace prod (replicas 2 to 1)",
    )
    # Unprotected, the Job controller deletes the active pods of a suspended Job.
    c.ok("alice", *patch({"suspend": True}), "-n", "dev")
    pods_gone(c, "batch", "dev")
    assert len(pod_names(c, "prod", "batch")) == 2
    assert [what(r, "replicas", "via") for r in denied_records(c, "batch")] == [
        {"replicas": {"old": 2, "new": 0}, "via": "spec.suspend"},
        {"replicas": {"old": 2, "new": 1}, "via": "spec.parallelism"},
    ]

    grant = c.granted("scale", "job/batch", "--reason", "pause the backfill", name="pause")
    c.ok("alice", *patch({"suspend": True}), "-n", "prod")
    pods_gone(c, "batch", "prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "replicas", "via") == {
        "verb": "scale",
        "resource": "jobs.batch",
        "name": "batch",
        "replicas": {"old": 2, "new": 0},
        "via": "spec.suspend",
    }
    c.assert_audit_logs_verify()


def test_cutting_a_cronjob_history_is_a_delete_of_the_jobs_it_removes(
    jitgate_cluster: JitCluster,
):
    c = jitgate_cluster
    for namespace in ("prod", "dev"):
        c.apply("admin", manifests.cronjob(namespace, "nightly"))
        uid = existing(c, "cronjob", "nightly", namespace)["metadata"]["uid"]
        owner = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "nightly",
            "uid": uid,
            "controller": True,
        }
        # One after the other: nightly-1 starts first, so it is the oldest of the history.
        for name in ("nightly-1", "nightly-2"):
            c.apply("admin", manifests.job(namespace, name, owners=[owner]))
            wait_for(c, "jsonpath={.status.active}=1", f"job/{name}", namespace=namespace)
            (pod,) = pod_names(c, namespace, name)
            c.api.set_pod_phase(namespace, pod, "Succeeded")
            wait_for(c, "condition=Complete", f"job/{name}", namespace=namespace)
    cut = (
        "patch",
        "cronjob",
        "nightly",
        "--type=merge",
        "-p",
        '{"spec":{"successfulJobsHistoryLimit":1}}',
    )
    refusal = (
        "jitgate denied delete job nightly-1 in namespace prod",
        "kubectl jit request delete job/nightly-1 -n prod",
    )

    refused(c.kubectl("alice", *cut, "-n", "prod", "--dry-run=server"), *refusal)
    refused(c.kubectl("alice", *cut, "-n", "prod"), *refusal)
    # Unprotected, the CronJob controller deletes the oldest finished Job at once.
    c.ok("alice", *cut, "-n", "dev")
    wait_for(c, "delete", "job/nightly-1", namespace="dev")
    existing(c, "job", "nightly-2", "dev")
    for name in ("nightly-1", "nightly-2"):
        existing(c, "job", name, "prod")
    assert existing(c, "cronjob", "nightly", "prod")["spec"]["successfulJobsHistoryLimit"] == 3
    assert [(r.get("dryRun"), r["action"].get("via")) for r in denied_records(c, "nightly-1")] == [
        (True, "spec.successfulJobsHistoryLimit"),
        (False, "spec.successfulJobsHistoryLimit"),
    ]

    grant = c.granted("delete", "job/nightly-1", "--reason", "INC-16: trim", name="nightly-trim")
    c.ok("alice", *cut, "-n", "prod")
    wait_for(c, "delete", "job/nightly-1", namespace="prod")
    existing(c, "job", "nightly-2", "prod")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via", "owner") == {
        "verb": "delete",
        "resource": "jobs.batch",
        "name": "nightly-1",
        "via": "spec.successfulJobsHistoryLimit",
        "owner": "cronjobs.batch/nightly",
    }
    c.assert_audit_logs_verify()


# ------------------------------------------------------------------ 2.6 the namespace itself


def test_deleting_a_protected_namespace_deletes_each_protected_object(
    jitgate_cluster: JitCluster,
):
    c = jitgate_cluster
    for namespace in ("outcomes-ns", "outcomes-dev"):
        c.apply("admin", manifests.pod(namespace, "tenant-0", node=None))

    refused(
        c.kubectl("alice", "delete", "namespace", "outcomes-ns", "--wait=false"),
        "jitgate denied delete pod tenant-0 in namespace outcomes-ns",
    )
    # Unprotected, the namespace controller empties the namespace and removes it.
    c.ok("alice", "delete", "namespace", "outcomes-dev", "--wait=false")
    wait_for(c, "delete", "namespace/outcomes-dev")
    assert existing(c, "namespace", "outcomes-ns")["status"]["phase"] == "Active"
    assert pod_names(c, "outcomes-ns", "tenant-0") == ["tenant-0"]

    grant = request_any(
        c, "empty-tenant", "outcomes-ns", {"verb": "delete", "resource": "pods", "names": []}
    )
    c.ok("alice", "delete", "namespace", "outcomes-ns", "--wait=false")
    wait_for(c, "delete", "namespace/outcomes-ns")
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name", "via") == {
        "verb": "delete",
        "resource": "pods",
        "name": "tenant-0",
        "via": "namespaces/outcomes-ns",
    }
    c.assert_audit_logs_verify()


# ------------------------------------------------------------------ 2.7 the protection label


def test_removing_the_protection_label_needs_a_grant_and_is_recorded(
    jitgate_cluster: JitCluster,
):
    c = jitgate_cluster
    c.create_pods("outcomes-label", "guarded-0")
    unlabel = ("label", "namespace", "outcomes-label", "jitgate.dev/protected-")
    relabel = ("label", "--overwrite", "namespace", "outcomes-label", "jitgate.dev/protected=no")
    refusal = (
        "jitgate denied unprotect namespace outcomes-label",
        "kubectl jit request unprotect namespace/outcomes-label",
    )

    refused(c.kubectl("alice", *unlabel), *refusal)
    refused(c.kubectl("alice", *relabel), *refusal)
    labels = existing(c, "namespace", "outcomes-label")["metadata"]["labels"]
    assert labels["jitgate.dev/protected"] == "true"
    # Still protected: the delete that removing the label would have opened is decided.
    refused(
        c.kubectl("alice", "delete", "pod", "guarded-0", "-n", "outcomes-label", "--wait=false"),
        "jitgate denied delete pod guarded-0 in namespace outcomes-label",
    )

    grant = request_any(
        c,
        "unprotect",
        "outcomes-label",
        {"verb": "unprotect", "resource": "namespaces", "names": ["outcomes-label"]},
    )
    c.ok("alice", *unlabel)
    (allowed,) = allowed_records(c, grant)
    assert what(allowed, "verb", "resource", "name") == {
        "verb": "unprotect",
        "resource": "namespaces",
        "name": "outcomes-label",
    }
    c.assert_audit_logs_verify()


# ---------------------------------------------------------------- 2.3 deletecollection


def test_a_grant_holder_may_delete_a_collection(jitgate_cluster: JitCluster):
    c = jitgate_cluster
    for name in ("nightly-0", "nightly-1"):
        c.apply("admin", manifests.pod("outcomes-batch", name, node=None, labels={"job": "n"}))
    collection = "/api/v1/namespaces/outcomes-batch/pods?labelSelector=job%3Dn"

    refused(c.kubectl("alice", "delete", "--raw", collection), "alice holds no live grant")
    assert pod_names(c, "outcomes-batch", "nightly-0") == ["nightly-0"]
    assert pod_names(c, "outcomes-batch", "nightly-1") == ["nightly-1"]

    grant = request_any(
        c, "clear-nightly", "outcomes-batch", {"verb": "delete", "resource": "pods", "names": []}
    )
    c.ok("alice", "delete", "--raw", collection)
    wait_for(c, "delete", "pod/nightly-0", namespace="outcomes-batch")
    wait_for(c, "delete", "pod/nightly-1", namespace="outcomes-batch")
    # The API server admits each pod it deletes (a graceful delete more than once), with the
    # pod in oldObject: each admission is decided and recorded as a delete of that pod.
    allowed = allowed_records(c, grant)
    assert {r["action"]["name"] for r in allowed} == {"nightly-0", "nightly-1"}
    assert {(r["action"]["verb"], r["action"]["via"]) for r in allowed} == {
        ("delete", "deletecollection")
    }
    c.assert_audit_logs_verify()
