"""delete and scale: DELETE with oldObject, scale subresource UPDATEs, spec.replicas changes."""

from __future__ import annotations

import base64
import json
from typing import Any

from jitgate.core.canonical import digest

GRANTS = "grants.jitgate.dev"
PODS = ("", "v1", "pods")
DEPLOYMENTS = ("apps", "v1", "deployments")


async def add_grant(
    cluster: Any, webhook: Any, reviews: Any, actions: list[dict[str, Any]], **kw: Any
) -> None:
    body = reviews.grant(actions=actions, **kw)
    cluster.create(GRANTS, body, "prod")
    name = body["metadata"]["name"]
    await reviews.until(
        webhook, lambda cache: any(g.name == name for g in cache.grants.for_user("prod", "alice"))
    )


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "prod",
            "uid": f"uid-{name}",
            "resourceVersion": "77",
            "labels": labels or {"app": "web"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d4b9c",
                    "uid": "rs-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], "nodeName": "worker-1"},
        "status": {"phase": "Running"},
    }


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


async def test_delete_with_a_grant_records_what_was_deleted(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(
        cluster, webhook, reviews, [{"verb": "delete", "resource": "pods", "names": ["web-0"]}]
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
        [{"verb": "delete", "resource": "pods", "names": ["web-0", "web-1"]}],
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
        cluster, webhook, reviews, [{"verb": "delete", "resource": "secrets", "names": ["db"]}]
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
        'kubectl jit request scale deployment/web -n prod --for 15m --reason "<why>"'
    )
    await add_grant(
        cluster,
        webhook,
        reviews,
        [{"verb": "scale", "resource": "deployments.apps", "names": ["web"]}],
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
        [{"verb": "scale", "resource": "deployments.apps", "names": ["web"]}],
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
        [{"verb": "scale", "resource": "deployments.apps", "names": ["db"]}],
    )
    answer = await validate(reviews.scale("db", 3, 1, resource="statefulsets"))
    assert not answer.allowed  # the grant is for the deployment called db, not the statefulset
    assert answer.message.endswith(
        'kubectl jit request scale statefulset/db -n prod --for 15m --reason "<why>"'
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
        cluster, webhook, reviews, [{"verb": "delete", "resource": "pods", "names": ["web-0"]}]
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
