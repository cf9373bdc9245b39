"""The Grant an approved request gets: its name, window and body, decided without I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from jitgate.core.api import (
    AccessRequest,
    Approval,
    Grant,
    GrantSpec,
    ObjectMeta,
    ObjectReference,
)

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' generated suffixes: no vowels
_MAX_NAME = 253
LABEL_REQUEST = "jitgate.dev/access-request"
# kopf's finalizer (settings.persistence.finalizer). A grant is created with it, so even a
# grant deleted the instant it appears is seen by the deletion handler and recorded.
FINALIZER = "jitgate.dev/operator"


def grant_name(request_name: str, request_uid: str) -> str:
    """`<request>-<5 chars>`: stable across retries and restarts, new for a re-created request."""
    number = int.from_bytes(hashlib.sha256(request_uid.encode()).digest()[:8], "big")
    suffix = ""
    for _ in range(5):
        number, digit = divmod(number, len(_ALPHABET))
        suffix += _ALPHABET[digit]
    stem = request_name[: _MAX_NAME - len(suffix) - 1].rstrip("-.")
    return f"{stem}-{suffix}"


def owner_reference(request: AccessRequest) -> dict[str, Any]:
    return {
        "apiVersion": request.api_version,
        "kind": request.kind,
        "name": request.metadata.name,
        "uid": request.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def plan_grant(
    request: AccessRequest,
    *,
    now: dt.datetime,
    duration: dt.timedelta,
    policy: str,
    approvals: Sequence[Approval],
    break_glass: bool,
) -> Grant:
    """The Grant to create: the request's actions for its requester, from now for `duration`."""
    requester = request.spec.requester
    if requester is None:  # decide() never approves an unstamped request
        raise ValueError("an AccessRequest without a stamped requester cannot be granted")
    name = request.metadata.name or ""
    uid = request.metadata.uid or ""
    # Whole seconds, as Kubernetes writes timestamps and as status.grant.expiresAt shows it.
    start = now.replace(microsecond=0)
    return Grant(
        metadata=ObjectMeta(
            name=grant_name(name, uid),
            namespace=request.metadata.namespace,
            labels={LABEL_REQUEST: name[:63].rstrip("-_.")},
        ),
        spec=GrantSpec(
            user=requester.user,
            actions=list(request.spec.actions),
            not_before=start,
            expires_at=start + duration,
            access_request=ObjectReference(name=name, uid=uid),
            policy=policy,
            approvals=list(approvals),
            break_glass=break_glass,
        ),
    )


def grant_body(grant: Grant, request: AccessRequest) -> dict[str, Any]:
    """The object to POST: the owner reference makes deleting the request delete the grant."""
    body = grant.to_wire()
    body.pop("status", None)
    body["metadata"] = {
        "name": grant.metadata.name,
        "namespace": grant.metadata.namespace,
        "labels": dict(grant.metadata.labels),
        "ownerReferences": [owner_reference(request)],
        "finalizers": [FINALIZER],
    }
    return body


def belongs_to(grant: dict[str, Any], request_uid: str) -> bool:
    refs = grant.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == request_uid and ref.get("controller") for ref in refs)
