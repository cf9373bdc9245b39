"""Paths through a controller or the namespace: an autoscaler on a protected workload, a
namespace delete, and the label change that switches protection off. The webhook reads the
target's replicas and the namespace's objects from the (emulated) API server."""

from __future__ import annotations

from typing import Any

from support.admission import add_grant
from support.objects import pod

DEPLOYMENTS = "deployments.apps"
PROTECTED = {"jitgate.dev/protected": "true"}


async def test_an_autoscaler_forcing_a_protected_deployment_down_is_a_denied_scale(
    cluster: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.create(DEPLOYMENTS, reviews.deployment("web", replicas=3), "prod")
    answer = await validate(reviews.autoscaler_review(reviews.autoscaler("pin", "web")))
    assert not answer.allowed
    assert answer.message.startswith(
        "jitgate denied scale deployment web in namespace prod (replicas 3 to 1): "
    )
    assert "kubectl jit request scale deployment/web -n prod" in answer.message
    [record] = audit_log()
    assert record["type"] == "action.denied" and record["namespace"] == "prod"
    assert record["action"]["replicas"] == {"old": 3, "new": 1}
    assert record["action"]["via"] == "horizontalpodautoscalers.autoscaling/pin"
    assert record["action"]["bounds"] == {"minReplicas": 1, "maxReplicas": 1}


async def test_an_autoscaler_with_a_scale_grant_is_allowed_and_recorded(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.create(DEPLOYMENTS, reviews.deployment("web", replicas=3), "prod")
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "scale", "resource": DEPLOYMENTS, "names": ["web"]}],
    )
    before = reviews.autoscaler("hpa", "web", low=3, high=3)
    after = reviews.autoscaler("hpa", "web", low=2, high=10)
    answer = await validate(reviews.autoscaler_review(after, before, dry_run=True))
    assert answer.allowed
    [record] = audit_log()
    assert record["type"] == "action.allowed" and record["dryRun"] is True
    assert record["action"]["replicas"] == {"old": 3, "new": 3}  # free to move within 2..10


async def test_autoscalers_that_cannot_move_a_protected_workload_pass_unrecorded(
    cluster: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.create(DEPLOYMENTS, reviews.deployment("web", replicas=3), "prod")
    pinned_in_place = reviews.autoscaler("a", "web", low=3, high=3)
    no_target = reviews.autoscaler("b", "missing", low=1, high=1)
    not_a_workload = reviews.autoscaler("c", "x", kind="Widget", api_version="example.com/v1")
    for hpa in (pinned_in_place, no_target, not_a_workload):
        assert (await validate(reviews.autoscaler_review(hpa))).allowed
    assert audit_log() == []


async def test_deleting_a_protected_namespace_needs_a_grant_for_each_protected_object(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    for name in ("web-1", "web-0"):
        cluster.create("pods", pod(name), "prod")
    answer = await validate(reviews.namespace_delete("prod"))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")

    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "pods", "names": ["web-0"]}],
    )
    answer = await validate(reviews.namespace_delete("prod"))
    assert answer.message.startswith("jitgate denied delete pod web-1 in namespace prod: ")

    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "pods", "names": []}],
        name="empty-prod",
    )
    assert (await validate(reviews.namespace_delete("prod"))).allowed
    allowed = [r for r in audit_log() if r["type"] == "action.allowed"]
    assert [(r["namespace"], r["action"]["name"], r["action"]["via"]) for r in allowed] == [
        ("prod", "web-0", "namespaces/prod"),
        ("prod", "web-1", "namespaces/prod"),
    ]


async def test_deleting_an_unprotected_or_empty_namespace_is_not_decided(
    cluster: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    cluster.create(
        "pods", pod("web-0") | {"metadata": {"name": "web-0", "namespace": "dev"}}, "dev"
    )
    assert (await validate(reviews.namespace_delete("dev"))).allowed
    assert (await validate(reviews.namespace_delete("prod"))).allowed  # nothing protected in it
    assert audit_log() == []


async def test_removing_the_protection_label_is_a_denied_unprotect(
    validate: Any, reviews: Any, audit_log: Any
) -> None:
    for sub_resource in (None, "status", "finalize"):
        answer = await validate(reviews.namespace_update(PROTECTED, {}, sub_resource=sub_resource))
        assert not answer.allowed
        assert answer.message.startswith("jitgate denied unprotect namespace prod: ")
        assert "kubectl jit request unprotect namespace/prod -n prod" in answer.message
    records = audit_log()
    assert [(r["type"], r["namespace"], r["action"]["verb"]) for r in records] == [
        ("action.denied", "prod", "unprotect")
    ] * 3
    assert records[0]["action"]["policies"] == ["production"]


async def test_other_label_changes_and_exempt_callers_pass(
    validate: Any, reviews: Any, audit_log: Any
) -> None:
    team = {**PROTECTED, "team": "payments"}
    assert (await validate(reviews.namespace_update(PROTECTED, team))).allowed
    assert (await validate(reviews.namespace_update({}, PROTECTED, name="dev"))).allowed
    assert (await validate(reviews.namespace_update(PROTECTED, {}, user="flux"))).allowed
    assert audit_log() == []


async def test_unprotect_with_a_grant_is_allowed_and_recorded(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "unprotect", "resource": "namespaces", "names": ["prod"]}],
    )
    assert (await validate(reviews.namespace_update(PROTECTED, {}))).allowed
    [record] = audit_log()
    assert record["type"] == "action.allowed"
    assert record["grant"] == "fix-web-0-x7k2"
    assert (record["action"]["verb"], record["action"]["resource"]) == ("unprotect", "namespaces")


async def test_deleting_an_unlisted_owner_needs_a_grant_for_its_protected_dependents(
    cluster: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    owner = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "holder", "namespace": "prod", "uid": "holder-uid"},
    }
    dependent = pod("web-0")
    dependent["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "holder", "uid": "holder-uid"}
    ]
    cluster.create("pods", dependent, "prod")
    deleting = reviews.delete(owner, ("", "v1", "configmaps"))
    answer = await validate(deleting)
    assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")
    [record] = audit_log()
    assert record["action"]["via"] == "configmaps/holder"

    deleting["request"]["options"]["propagationPolicy"] = "Orphan"  # the pod stays
    assert (await validate(deleting)).allowed
    assert len(audit_log()) == 1


def cronjob(successful: int, failed: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "prod", "uid": "nightly-uid"},
        "spec": {
            "schedule": "0 3 * * *",
            "successfulJobsHistoryLimit": successful,
            "failedJobsHistoryLimit": failed,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
    }


def finished_job(cluster: Any, name: str, started: str, condition: str = "Complete") -> None:
    """A Job the CronJob `nightly` controls, finished (its status written as the Job
    controller does, through the status subresource)."""
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "prod",
            "ownerReferences": [owner | {"uid": "nightly-uid", "controller": True}],
        },
        "spec": {"template": {"spec": {"containers": []}}},
    }
    cluster.create("jobs.batch", job, "prod")
    status = {"startTime": started, "conditions": [{"type": condition, "status": "True"}]}
    cluster.handle.emulator.patch_object(
        "jobs.batch", "prod", name, {"status": status}, subresource="status"
    )


def cronjob_update(reviews: Any, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    review: dict[str, Any] = reviews.review(
        operation="UPDATE",
        kind=("batch", "v1", "CronJob"),
        resource=("batch", "v1", "cronjobs"),
        namespace="prod",
        name="nightly",
        obj=new,
        old=old,
    )
    return review


async def protect_jobs(cluster: Any, webhook: Any, reviews: Any) -> None:
    resources = [*reviews.policy()["spec"]["resources"], "jobs.batch"]
    cluster.patch(
        "accesspolicies.jitgate.dev", None, "production", {"spec": {"resources": resources}}
    )
    await reviews.until(
        webhook, lambda cache: "jobs.batch" in cache.policies.by_name["production"].spec.resources
    )


async def test_cutting_a_cronjob_history_needs_a_grant_for_each_job_it_removes(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    finished_job(cluster, "nightly-2", "2026-12-04T03:00:00Z")
    finished_job(cluster, "nightly-1", "2026-12-03T03:00:00Z")
    finished_job(cluster, "nightly-f", "2026-12-02T03:00:00Z", "Failed")
    lowered = cronjob_update(reviews, cronjob(3), cronjob(1))
    # No policy lists Jobs yet: the controller removes nothing protected.
    assert (await validate(lowered)).allowed
    assert audit_log() == []

    await protect_jobs(cluster, webhook, reviews)
    answer = await validate(lowered)
    assert answer.message.startswith("jitgate denied delete job nightly-1 in namespace prod: ")
    assert "kubectl jit request delete job/nightly-1 -n prod" in answer.message
    [record] = audit_log()
    assert record["action"]["via"] == "spec.successfulJobsHistoryLimit"
    assert record["action"]["owner"] == "cronjobs.batch/nightly"

    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "jobs.batch", "names": ["nightly-1"]}],
    )
    assert (await validate(lowered)).allowed
    allowed = [r for r in audit_log() if r["type"] == "action.allowed"]
    assert [r["action"]["name"] for r in allowed] == ["nightly-1"]

    # The failed history: its one Job goes when the limit drops to 0.
    answer = await validate(cronjob_update(reviews, cronjob(3, 1), cronjob(3, 0)))
    assert answer.message.startswith("jitgate denied delete job nightly-f in namespace prod: ")
    # Raising a limit removes nothing and is not decided.
    assert (await validate(cronjob_update(reviews, cronjob(1), cronjob(5)))).allowed
