"""delete and scale: DELETE with oldObject, scale subresource UPDATEs, spec.replicas changes."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from support.admission import add_grant
from support.objects import pod

from jitgate.core.canonical import digest

PODS = ("", "v1", "pods")
DEPLOYMENTS = ("apps", "v1", "deployments")


async def test_delete_without_a_grant_is_denied_with_the_request_command(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    answer = await validate(reviews.delete(reviews.deployment(), DEPLOYMENTS))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied delete deployment web in namespace prod: ")
    assert answer.message.endswith(
        'ask with: kubectl jit request delete deployment/web -n prod --for 15m --reason "<why>"'
    )
    [record] = audit_log()
    assert record["type"] == "action.denied"
    assert (
        record["action"]["verb"] == "delete" and record["action"]["resource"] == "deployments.apps"
    )


async def test_a_delete_of_an_object_already_being_deleted_is_decided_only_to_change_it(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    """The API server's second call for one DELETE (on the object it has just marked), or any
    DELETE that leaves the pending deletion as it is, changes nothing: no decision, no
    record. A shorter grace period or another propagation policy is decided like any delete."""
    marked = reviews.deployment()
    marked["metadata"].update(
        deletionTimestamp="2026-12-04T18:00:00Z", deletionGracePeriodSeconds=0
    )
    unchanged = reviews.delete(marked, DEPLOYMENTS)
    assert (await validate(unchanged)).allowed
    assert audit_log() == []
    for options in ({"propagationPolicy": "Orphan"}, {"orphanDependents": True}):
        changed = reviews.delete(marked, DEPLOYMENTS)
        changed["request"]["options"].update(options)
        assert not (await validate(changed)).allowed
    terminating = reviews.deployment()
    terminating["metadata"].update(
        deletionTimestamp="2026-12-04T18:00:30Z", deletionGracePeriodSeconds=30
    )
    forced = reviews.delete(terminating, DEPLOYMENTS)
    forced["request"]["options"]["gracePeriodSeconds"] = 0
    assert not (await validate(forced)).allowed
    assert [r["type"] for r in audit_log()] == ["action.denied"] * 3


async def test_delete_with_a_grant_records_what_was_deleted(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "pods", "names": ["web-0"]}],
    )
    obj = pod("web-0", app="web", tier="frontend")
    answer = await validate(reviews.delete(obj, PODS))
    assert answer.allowed
    [record] = audit_log()
    assert record["type"] == "action.allowed"
    assert record["action"] == {
        "verb": "delete",
        "resource": "pods",
        "name": "web-0",
        "kind": "Pod",
        "labels": {"app": "web", "tier": "frontend"},
        "owners": [{"kind": "ReplicaSet", "name": "web-7d4b9c"}],
        "objectDigest": digest(obj),
        "propagationPolicy": "Background",
    }


async def test_delete_collection_arrives_as_one_review_per_object(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "pods", "names": ["web-0", "web-1"]}],
    )
    answers = [await validate(reviews.delete(pod(f"web-{i}"), PODS)) for i in range(3)]
    assert [a.allowed for a in answers] == [True, True, False]
    assert [(r["type"], r["action"]["name"]) for r in audit_log()] == [
        ("action.allowed", "web-0"),
        ("action.allowed", "web-1"),
        ("action.denied", "web-2"),
    ]


async def test_a_deleted_secret_is_recorded_by_digest_never_by_content(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any, audit_dir: Any
) -> None:
    password = "hunter2-do-not-log"
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "db", "namespace": "prod", "uid": "s-uid", "labels": {"app": "db"}},
        "data": {"password": base64.b64encode(password.encode()).decode()},
        "stringData": {"also": password},
    }
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "secrets", "names": ["db"]}],
    )
    assert (await validate(reviews.delete(secret, ("", "v1", "secrets")))).allowed
    [record] = audit_log()
    assert record["action"]["objectDigest"] == digest(secret)
    on_disk = "".join(path.read_text() for path in audit_dir.rglob("*.jsonl"))
    assert password not in on_disk and secret["data"]["password"] not in on_disk


async def test_deleting_a_resource_no_policy_lists_is_not_intercepted(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "prod"},
    }
    assert (await validate(reviews.delete(config_map, ("", "v1", "configmaps")))).allowed
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}
    assert (
        await validate(reviews.delete(namespace, ("", "v1", "namespaces"), namespace=""))
    ).allowed
    assert audit_log() == []


async def test_scale_subresource(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    denied = await validate(reviews.scale("web", 3, 10))
    assert not denied.allowed
    assert "scale deployment web in namespace prod (replicas 3 to 10)" in denied.message
    assert denied.message.endswith(
        'kubectl jit request scale deployment/web -n prod --replicas 10 --for 15m --reason "<why>"'
    )
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "scale", "resource": "deployments.apps", "names": ["web"]}],
    )
    assert (await validate(reviews.scale("web", 3, 10))).allowed
    to_zero = await validate(reviews.scale("web", 3, 0))  # Scale omits replicas when it is 0
    assert to_zero.allowed
    records = audit_log()
    assert [r["action"]["replicas"] for r in records] == [
        {"old": 3, "new": 10},
        {"old": 3, "new": 10},
        {"old": 3, "new": 0},
    ]
    assert records[1]["action"]["subresource"] == "scale"


async def test_a_scale_update_that_keeps_the_replica_count_is_not_a_scale(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    assert (await validate(reviews.scale("web", 3, 3))).allowed
    assert audit_log() == []


async def test_deployment_updates_are_protected_only_when_replicas_change(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    image_only = await validate(reviews.deployment_update("web", 3, 3, image="nginx:1.28"))
    assert image_only.allowed
    assert audit_log() == []
    replicas = await validate(reviews.deployment_update("web", 3, 1))
    assert not replicas.allowed
    assert "kubectl jit request scale deployment/web -n prod" in replicas.message
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "scale", "resource": "deployments.apps", "names": ["web"]}],
    )
    assert (await validate(reviews.deployment_update("web", 3, 1))).allowed
    records = audit_log()
    assert [(r["type"], r["action"]["replicas"]) for r in records] == [
        ("action.denied", {"old": 3, "new": 1}),
        ("action.allowed", {"old": 3, "new": 1}),
    ]
    assert "subresource" not in records[1]["action"]


async def test_statefulset_scale_and_grants_for_another_resource(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "scale", "resource": "deployments.apps", "names": ["db"]}],
    )
    answer = await validate(reviews.scale("db", 3, 1, resource="statefulsets"))
    assert not answer.allowed  # the grant is for the deployment called db, not the statefulset
    assert answer.message.endswith(
        'kubectl jit request scale statefulset/db -n prod --replicas 1 --for 15m --reason "<why>"'
    )


async def test_replicas_absent_means_the_default_of_one(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    review = reviews.deployment_update("web", 1, 1)
    del review["request"]["oldObject"]["spec"]["replicas"]  # defaulted: 1
    assert (await validate(review)).allowed
    review = reviews.deployment_update("web", 1, 4)
    del review["request"]["oldObject"]["spec"]["replicas"]
    assert not (await validate(review)).allowed
    assert audit_log()[0]["action"]["replicas"] == {"old": 1, "new": 4}


async def test_wire_shapes_match_what_the_api_server_sends(reviews: Any) -> None:
    """A guard on the fixtures themselves: the fields the API server sets for each action."""
    exec_request = reviews.exec()["request"]
    assert exec_request["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
    assert exec_request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert exec_request["subResource"] == "exec" and exec_request["operation"] == "CONNECT"
    assert exec_request["oldObject"] is None and exec_request["object"]["kind"] == "PodExecOptions"
    delete_request = reviews.delete(reviews.deployment(), DEPLOYMENTS)["request"]
    assert delete_request["object"] is None and delete_request["oldObject"]["kind"] == "Deployment"
    assert delete_request["options"]["kind"] == "DeleteOptions"
    scale_request = reviews.scale()["request"]
    assert scale_request["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert scale_request["object"]["apiVersion"] == "autoscaling/v1"
    json.dumps(scale_request)


def eviction_review(reviews: Any, name: str, **kwargs: Any) -> dict[str, Any]:
    """`POST pods/<name>/eviction` (kubectl drain), as the API server sends it."""
    eviction = {
        "kind": "Eviction",
        "apiVersion": "policy/v1",
        "metadata": {"name": name, "namespace": "prod", "creationTimestamp": None},
        "deleteOptions": {"propagationPolicy": "Background"},
    }
    options = {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    return reviews.review(  # type: ignore[no-any-return]
        operation="CREATE",
        kind=("policy", "v1", "Eviction"),
        resource=PODS,
        sub_resource="eviction",
        namespace="prod",
        name=name,
        obj=eviction,
        options=options,
        **kwargs,
    )


async def test_an_eviction_is_a_delete_of_the_pod(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # The API server deletes an evicted pod without a DELETE review of its own.
    answer = await validate(eviction_review(reviews, "web-0"))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")
    assert "ask with: kubectl jit request delete pod/web-0 -n prod" in answer.message
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "pods", "names": ["web-0"]}],
    )
    assert (await validate(eviction_review(reviews, "web-0"))).allowed
    assert not (await validate(eviction_review(reviews, "web-1"))).allowed
    records = audit_log()
    assert [r["type"] for r in records] == ["action.denied", "action.allowed", "action.denied"]
    assert {k: records[1]["action"][k] for k in ("verb", "resource", "name", "subresource")} == {
        "verb": "delete",
        "resource": "pods",
        "name": "web-0",
        "subresource": "eviction",
    }
    # An Eviction naming another pod than the URL is not understood, so it is denied.
    forged = eviction_review(reviews, "web-0")
    forged["request"]["object"]["metadata"]["name"] = "web-1"
    answer = await validate(forged)
    assert not answer.allowed and "cannot decide" in answer.message


# ------------------------------------------------------- edits that amount to delete or scale


def update_review(
    reviews: Any, resource: tuple[str, str, str], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """An UPDATE (a kubectl patch) of the object itself, as the API server sends it."""
    group, _, version = before["apiVersion"].rpartition("/")
    return reviews.review(  # type: ignore[no-any-return]
        operation="UPDATE",
        kind=(group, version, before["kind"]),
        resource=resource,
        namespace="prod",
        name=before["metadata"]["name"],
        obj=after,
        old=before,
        options={"kind": "PatchOptions", "apiVersion": "meta.k8s.io/v1"},
    )


async def test_a_delete_collection_item_is_named_by_its_old_object(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # kubectl delete pods --all: the API server admits each pod with no name but its object.
    def collected(name: str) -> dict[str, Any]:
        review: dict[str, Any] = reviews.delete(pod(name), PODS)
        review["request"]["name"] = ""
        return review

    answer = await validate(collected("web-0"))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")
    await add_grant(
        cluster, webhook, reviews, actions=[{"verb": "delete", "resource": "pods", "names": []}]
    )
    assert [(await validate(collected(name))).allowed for name in ("web-0", "web-1")] == [
        True,
        True,
    ]
    records = audit_log()
    assert [(r["type"], r["action"]["name"], r["action"]["via"]) for r in records] == [
        ("action.denied", "web-0", "deletecollection"),
        ("action.allowed", "web-0", "deletecollection"),
        ("action.allowed", "web-1", "deletecollection"),
    ]
    # An object of another namespace in the collection is not understood: denied.
    stray = collected("web-2")
    stray["request"]["oldObject"]["metadata"]["namespace"] = "dev"
    answer = await validate(stray)
    assert not answer.allowed and "cannot decide" in answer.message


async def test_pointing_owner_references_elsewhere_is_a_delete_of_the_object(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    before = reviews.deployment()
    after = copy.deepcopy(before)
    missing = {"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "0000"}
    after["metadata"]["ownerReferences"] = [missing]
    answer = await validate(update_review(reviews, DEPLOYMENTS, before, after))
    assert not answer.allowed
    assert answer.message.startswith("jitgate denied delete deployment web in namespace prod: ")
    assert "kubectl jit request delete deployment/web -n prod" in answer.message
    # Removing every owner orphans the object: nothing is deleted, nothing to decide.
    assert (await validate(update_review(reviews, DEPLOYMENTS, after, before))).allowed
    await add_grant(
        cluster,
        webhook,
        reviews,
        actions=[{"verb": "delete", "resource": "deployments.apps", "names": ["web"]}],
    )
    assert (await validate(update_review(reviews, DEPLOYMENTS, before, after))).allowed
    records = audit_log()
    assert [r["type"] for r in records] == ["action.denied", "action.allowed"]
    assert records[1]["action"] == {
        "verb": "delete",
        "resource": "deployments.apps",
        "name": "web",
        "kind": "Deployment",
        "owners": [{"kind": "ConfigMap", "name": "nobody"}],
        "via": "metadata.ownerReferences",
    }


async def test_a_live_pods_new_image_or_deadline_is_its_delete(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    before = pod("web-0")
    image, deadline = copy.deepcopy(before), copy.deepcopy(before)
    image["spec"]["containers"][0]["image"] = "registry.invalid/attacker:1"
    deadline["spec"]["activeDeadlineSeconds"] = 1
    labelled = copy.deepcopy(before)
    labelled["metadata"]["labels"]["tier"] = "frontend"
    assert (await validate(update_review(reviews, PODS, before, labelled))).allowed
    for after in (image, deadline):
        answer = await validate(update_review(reviews, PODS, before, after))
        assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")
    finished = copy.deepcopy(before)
    finished["status"]["phase"] = "Succeeded"
    image["status"]["phase"] = "Succeeded"
    assert (await validate(update_review(reviews, PODS, finished, image))).allowed
    assert [r["action"]["via"] for r in audit_log()] == [
        "spec.containers[app].image",
        "spec.activeDeadlineSeconds",
    ]


async def test_moving_statefulset_ordinals_is_a_scale(
    validate: Any, reviews: Any, audit_log: Any
) -> None:
    before = reviews.deployment("db")
    before.update(apiVersion="apps/v1", kind="StatefulSet")
    after = copy.deepcopy(before)
    after["spec"]["ordinals"] = {"start": 5}
    statefulsets = ("apps", "v1", "statefulsets")
    answer = await validate(update_review(reviews, statefulsets, before, after))
    assert answer.message.startswith("jitgate denied scale statefulset db in namespace prod")
    assert "kubectl jit request scale statefulset/db -n prod" in answer.message
    [record] = audit_log()
    assert record["action"]["via"] == "spec.ordinals.start"
    assert record["action"]["replicas"] == {"old": 3, "new": 3}


async def test_a_resize_that_restarts_a_container_is_a_delete_of_the_pod(
    validate: Any, reviews: Any, audit_log: Any
) -> None:
    before = pod("web-0")
    before["spec"]["containers"][0].update(
        resources={"requests": {"memory": "64Mi", "cpu": "100m"}},
        resizePolicy=[
            {"resourceName": "memory", "restartPolicy": "RestartContainer"},
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
        ],
    )
    cpu, memory = copy.deepcopy(before), copy.deepcopy(before)
    cpu["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "200m"
    memory["spec"]["containers"][0]["resources"]["requests"]["memory"] = "128Mi"

    def resize(after: dict[str, Any]) -> dict[str, Any]:
        review = update_review(reviews, PODS, before, after)
        review["request"]["subResource"] = "resize"
        return review

    assert (await validate(resize(cpu))).allowed
    answer = await validate(resize(memory))
    assert answer.message.startswith("jitgate denied delete pod web-0 in namespace prod: ")
    [record] = audit_log()
    assert (record["action"]["subresource"], record["action"]["via"]) == (
        "resize",
        "spec.containers[app].resources",
    )
