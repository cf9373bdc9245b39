"""AdmissionReviews shaped exactly as the API server sends them (`admission.k8s.io/v1`).

The demo uses these to play the API server's part (the emulator calls no webhooks), and the
tests use them to drive the webhook.
"""

from __future__ import annotations

import uuid
from typing import Any

from jitgate.core.api import GROUP, VERSION

Review = dict[str, Any]


def user_info(user: str, groups: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "username": user,
        "uid": f"uid-{user}",
        "groups": [*groups, "system:authenticated"],
    }


def review(
    *,
    operation: str,
    kind: tuple[str, str, str],
    resource: tuple[str, str, str],
    namespace: str,
    name: str,
    user: str,
    groups: list[str] | tuple[str, ...] = (),
    sub_resource: str | None = None,
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> Review:
    gvk = {"group": kind[0], "version": kind[1], "kind": kind[2]}
    gvr = {"group": resource[0], "version": resource[1], "resource": resource[2]}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": user_info(user, groups),
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": options,
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def exec_review(
    *,
    user: str,
    groups: list[str] | tuple[str, ...],
    namespace: str,
    pod: str,
    command: list[str],
    container: str | None = None,
    stdin: bool = False,
    tty: bool = False,
    dry_run: bool = False,
) -> Review:
    """`kubectl exec [-it] POD [-c CONTAINER] -- COMMAND…` at admission: CONNECT pods/exec."""
    options: dict[str, Any] = {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "stdin": stdin,
        "stdout": True,
        "stderr": not tty,
        "tty": tty,
        "command": command,
    }
    if container is not None:
        options["container"] = container
    return review(
        operation="CONNECT",
        kind=("", "v1", "PodExecOptions"),
        resource=("", "v1", "pods"),
        sub_resource="exec",
        namespace=namespace,
        name=pod,
        user=user,
        groups=groups,
        obj=options,
        dry_run=dry_run,
    )


def access_request_review(
    operation: str,
    *,
    user: str,
    groups: list[str] | tuple[str, ...],
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
) -> Review:
    """CREATE, UPDATE or DELETE of an AccessRequest (`sub_resource="status"` for approvals);
    a DELETE carries only the old object, as the API server sends it."""
    source = obj if obj is not None else old
    if source is None:
        raise ValueError("an AccessRequest review needs the object or the old object")
    options_kind = {
        "CREATE": "CreateOptions",
        "UPDATE": "UpdateOptions",
        "DELETE": "DeleteOptions",
    }[operation]
    return review(
        operation=operation,
        kind=(GROUP, VERSION, "AccessRequest"),
        resource=(GROUP, VERSION, "accessrequests"),
        namespace=source["metadata"]["namespace"],
        name=source["metadata"]["name"],
        user=user,
        groups=groups,
        sub_resource=sub_resource,
        obj=obj,
        old=old,
        options={"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
        dry_run=dry_run,
    )
