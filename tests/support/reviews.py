"""AdmissionReviews as the API server sends them to jitgate's webhook, for tests.

Built on `jitgate.devtools.admission_reviews` (which the demo uses too) with the tests' story
as defaults: alice, in `prod`, on `web-0` or the `web` deployment.
"""

from __future__ import annotations

from typing import Any

from jitgate.core.api import GROUP, VERSION
from jitgate.devtools import admission_reviews


def review(
    *, user: str = "alice", groups: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    """An AdmissionReview exactly as the API server sends it (admission.k8s.io/v1)."""
    return admission_reviews.review(user=user, groups=groups or [], **fields)


def exec_review(
    pod: str = "web-0",
    *,
    namespace: str = "prod",
    container: str | None = "app",
    command: list[str] | None = None,
    user: str = "alice",
    groups: list[str] | None = None,
    **flags: bool,
) -> dict[str, Any]:
    return admission_reviews.exec_review(
        user=user,
        groups=groups or [],
        namespace=namespace,
        pod=pod,
        container=container,
        command=command if command is not None else ["ls"],
        **flags,
    )


def attach_review(
    pod: str = "web-0",
    *,
    namespace: str = "prod",
    container: str = "app",
    stdin: bool = True,
    tty: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    options = {
        "kind": "PodAttachOptions",
        "apiVersion": "v1",
        "stdin": stdin,
        "stdout": True,
        "stderr": not tty,
        "tty": tty,
        "container": container,
    }
    return review(
        operation="CONNECT",
        kind=("", "v1", "PodAttachOptions"),
        resource=("", "v1", "pods"),
        sub_resource="attach",
        namespace=namespace,
        name=pod,
        obj=options,
        **kwargs,
    )


def portforward_review(
    pod: str = "web-0", *, namespace: str = "prod", ports: list[int] | None = None, **kwargs: Any
) -> dict[str, Any]:
    options = {"kind": "PodPortForwardOptions", "apiVersion": "v1", "ports": ports or [8080]}
    return review(
        operation="CONNECT",
        kind=("", "v1", "PodPortForwardOptions"),
        resource=("", "v1", "pods"),
        sub_resource="portforward",
        namespace=namespace,
        name=pod,
        obj=options,
        **kwargs,
    )


def deployment(name: str = "web", namespace: str = "prod", replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "9d1c-uid",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"app": name},
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def delete_review(
    obj: dict[str, Any], resource: tuple[str, str, str], **kwargs: Any
) -> dict[str, Any]:
    group, version = (
        obj["apiVersion"].split("/", 1) if "/" in obj["apiVersion"] else ("", obj["apiVersion"])
    )
    options = {
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/v1",
        "propagationPolicy": "Background",
    }
    if "namespace" not in kwargs:
        kwargs["namespace"] = obj["metadata"]["namespace"]
    return review(
        operation="DELETE",
        kind=(group, version, obj["kind"]),
        resource=resource,
        name=obj["metadata"]["name"],
        obj=None,
        old=obj,
        options=options,
        **kwargs,
    )


def scale(name: str, replicas: int, namespace: str = "prod") -> dict[str, Any]:
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "9d1c-uid",
            "resourceVersion": "42",
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": {"replicas": replicas} if replicas else {},
        "status": {"replicas": 3, "selector": f"app={name}"},
    }


def scale_review(
    name: str = "web",
    old: int = 3,
    new: int = 5,
    *,
    resource: str = "deployments",
    namespace: str = "prod",
    **kwargs: Any,
) -> dict[str, Any]:
    options = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    return review(
        operation="UPDATE",
        kind=("autoscaling", "v1", "Scale"),
        resource=("apps", "v1", resource),
        sub_resource="scale",
        namespace=namespace,
        name=name,
        obj=scale(name, new, namespace),
        old=scale(name, old, namespace),
        options=options,
        **kwargs,
    )


def deployment_update_review(
    name: str = "web",
    old: int = 3,
    new: int = 5,
    *,
    namespace: str = "prod",
    image: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    before, after = deployment(name, namespace, old), deployment(name, namespace, new)
    if image is not None:
        after["spec"]["template"]["spec"]["containers"][0]["image"] = image
    after["metadata"]["generation"] = 4
    options = {
        "kind": "PatchOptions",
        "apiVersion": "meta.k8s.io/v1",
        "fieldManager": "kubectl-patch",
    }
    return review(
        operation="UPDATE",
        kind=("apps", "v1", "Deployment"),
        resource=("apps", "v1", "deployments"),
        namespace=namespace,
        name=name,
        obj=after,
        old=before,
        options=options,
        **kwargs,
    )


def autoscaler(
    name: str = "web",
    target: str = "web",
    *,
    low: int | None = 1,
    high: int = 1,
    namespace: str = "prod",
    kind: str = "Deployment",
    api_version: str = "apps/v1",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "maxReplicas": high,
    }
    if low is not None:
        spec["minReplicas"] = low
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def autoscaler_review(
    hpa: dict[str, Any], old: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """CREATE of `hpa`, or its UPDATE from `old`."""
    return review(
        operation="CREATE" if old is None else "UPDATE",
        kind=("autoscaling", "v2", "HorizontalPodAutoscaler"),
        resource=("autoscaling", "v2", "horizontalpodautoscalers"),
        namespace=hpa["metadata"]["namespace"],
        name=hpa["metadata"]["name"],
        obj=hpa,
        old=old,
        **kwargs,
    )


def namespace(name: str = "prod", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def namespace_delete_review(name: str = "prod", **kwargs: Any) -> dict[str, Any]:
    return review(
        operation="DELETE",
        kind=("", "v1", "Namespace"),
        resource=("", "v1", "namespaces"),
        namespace="",
        name=name,
        old=namespace(name),
        **kwargs,
    )


def namespace_update_review(
    before: dict[str, str],
    after: dict[str, str],
    name: str = "prod",
    *,
    sub_resource: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A label change of namespace `name`, through the object or a subresource."""
    return review(
        operation="UPDATE",
        kind=("", "v1", "Namespace"),
        resource=("", "v1", "namespaces"),
        sub_resource=sub_resource,
        namespace="",
        name=name,
        obj=namespace(name, after),
        old=namespace(name, before),
        **kwargs,
    )


def ar_review(
    operation: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    *,
    sub_resource: str | None = None,
    user: str = "alice",
    groups: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    return admission_reviews.access_request_review(
        operation,
        user=user,
        groups=groups or [],
        obj=obj,
        old=old,
        sub_resource=sub_resource,
        dry_run=dry_run,
    )


def grant_review(
    operation: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    source = obj or old
    assert source is not None
    return review(
        operation=operation,
        kind=(GROUP, VERSION, "Grant"),
        resource=(GROUP, VERSION, "grants"),
        namespace=source["metadata"]["namespace"],
        name=source["metadata"]["name"],
        obj=obj,
        old=old,
        **kwargs,
    )
