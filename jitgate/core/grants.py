"""Grants, planned and ended without I/O.

`plan_grant` decides the Grant an approved request gets (its name, window and body);
`end_grant` decides how one ends (expired or revoked): the records to write first, then the
grant's status, then its request's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jitgate.core.api import (
    AccessRequest,
    AccessRequestStatus,
    Approval,
    AutoApproval,
    Grant,
    GrantSpec,
    GrantStatus,
    ObjectMeta,
    ObjectReference,
)
from jitgate.core.clock import whole_seconds
from jitgate.core.events import Actor, Record, governing_names, grant_record, request_record
from jitgate.core.requests.step import GRANTED, Notice, NotifyKind, set_condition, to_phase

Ended = Literal["Expired", "Revoked"]

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' generated suffixes: no vowels
_MAX_NAME = 253
LABEL_REQUEST = "jitgate.dev/access-request"
# Whose grant it is, for reading one user's Grants (the webhook's live read on a cache miss).
# A digest because a label value cannot hold every user name (`system:serviceaccount:…`, `@`,
# over 63 characters). Only a filter: whoever reads still checks spec.user.
LABEL_USER = "jitgate.dev/user-sha256"
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


def user_label(user: str) -> str:
    """The value of `LABEL_USER` for `user`: 40 hex digits of its SHA-256."""
    return hashlib.sha256(user.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Extension:
    """Where an extension's grant ends, and when the first grant of its chain began."""

    until: dt.datetime
    window_start: dt.datetime


def plan_grant(
    request: AccessRequest,
    *,
    now: dt.datetime,
    duration: dt.timedelta,
    policies: Sequence[str],
    approvals: Sequence[Approval],
    break_glass: bool,
    approved_outside_window: Sequence[str] = (),
    auto_approvals: Sequence[AutoApproval] = (),
    extension: Extension | None = None,
) -> Grant:
    """The Grant to create: the request's actions for its requester, from now (or its
    scheduled `startAt`, if later) for `duration`; an extension's until the end it was given."""
    requester = request.spec.requester
    if requester is None:  # decide() never approves an unstamped request
        raise ValueError("an AccessRequest without a stamped requester cannot be granted")
    name = request.metadata.name or ""
    uid = request.metadata.uid or ""
    # Whole seconds, as Kubernetes writes timestamps and as status.grant.expiresAt shows it.
    start = whole_seconds(max(now, request.spec.start_at or now))
    expires_at = whole_seconds(extension.until) if extension else start + duration
    return Grant(
        metadata=ObjectMeta(
            name=grant_name(name, uid),
            namespace=request.metadata.namespace,
            labels={
                LABEL_REQUEST: name[:63].rstrip("-_."),
                LABEL_USER: user_label(requester.user),
            },
        ),
        spec=GrantSpec(
            user=requester.user,
            actions=list(request.spec.actions),
            not_before=start,
            expires_at=expires_at,
            access_request=ObjectReference(name=name, uid=uid),
            # `policy` only when one governs (api.GrantSpec): a reader knowing only that
            # field then finds no policy rather than the wrong one.
            policy=policies[0] if len(policies) == 1 else None,
            policies=list(policies),
            approvals=list(approvals),
            break_glass=break_glass,
            approved_outside_window=list(approved_outside_window),
            auto_approvals=list(auto_approvals),
            reason=request.spec.reason,
            ticket=request.spec.ticket,
            max_uses=request.spec.max_uses,
            window_start=whole_seconds(extension.window_start) if extension else None,
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


# ----------------------------------------------------------------------- grant endings


@dataclass(frozen=True)
class Ending:
    """How a grant ends: records first, then the grant's status, then the request's."""

    records: tuple[Record, ...]
    grant_status: GrantStatus | None
    request_status: AccessRequestStatus | None
    notices: tuple[Notice, ...]
    notify: NotifyKind | None
    lag: dt.timedelta | None


def is_used_up(grant: Grant) -> bool:
    """A grant with maxUses whose every use is counted (`status.uses`, by the webhook)."""
    limit = grant.spec.max_uses
    return limit is not None and (grant.status.uses or 0) >= limit


def used_up_reason(grant: Grant) -> str:
    limit = grant.spec.max_uses or 0
    return f"was used up ({grant.status.uses} of {limit} use{'s' if limit != 1 else ''})"


def ending_kind(grant: Grant, now: dt.datetime) -> Ended:
    """A grant that disappears after its expiry expired; before it, it was revoked."""
    return "Expired" if now >= grant.spec.expires_at else "Revoked"


def end_grant(
    grant: Grant,
    request: AccessRequest | None,
    *,
    now: dt.datetime,
    kind: Ended,
    actor: Actor | None,
    reason: str,
) -> Ending:
    already = grant.status.phase in ("Expired", "Revoked")
    used_up = kind == "Expired" and is_used_up(grant) and now < grant.spec.expires_at
    if used_up:
        reason = used_up_reason(grant)
    owns = (
        request is not None
        and request.status.phase == "Approved"
        and request.status.grant is not None
        and request.status.grant.name == grant.metadata.name
        and request.metadata.deletion_timestamp is None
    )
    lag = now - grant.spec.expires_at if kind == "Expired" and not used_up else None
    records: list[Record] = []
    if not already:
        extra: dict[str, Any] | None = (
            {"lagSeconds": round(lag.total_seconds(), 3)} if lag is not None else None
        )
        if used_up:
            extra = {"uses": grant.status.uses or 0, "maxUses": grant.spec.max_uses or 0}
        kind_name = (
            "grant.exhausted"
            if used_up
            else "grant.expired"
            if kind == "Expired"
            else "grant.revoked"
        )
        records.append(grant_record(kind_name, grant, now, actor=actor, reason=reason, extra=extra))
        if kind == "Expired" and owns and request is not None:
            records.append(
                request_record(
                    "request.expired",
                    request,
                    now,
                    reason=reason,
                    grant=grant.metadata.name,
                    context={
                        "cause": "GrantUsedUp" if used_up else "GrantExpired",
                        **governing_names(request.status.policy_names),
                    },
                )
            )
    request_status: AccessRequestStatus | None = None
    if owns and request is not None:
        message = f"grant {grant.metadata.name} {reason}"
        cause = "GrantUsedUp" if used_up else "GrantExpired" if kind == "Expired" else "Revoked"
        request_status = to_phase(
            request.status.phase,
            kind,
            message=message,
            conditions=set_condition(
                request.status.conditions, GRANTED, "False", cause, message, now
            ),
        )
    return Ending(
        records=tuple(records),
        grant_status=None if already else GrantStatus(phase=kind),
        request_status=request_status,
        notices=(Notice(kind, f"grant {grant.metadata.name} {reason}", warning=kind == "Revoked"),)
        if not already
        else (),
        notify="expired" if kind == "Expired" and owns and not already else None,
        lag=lag if not already else None,
    )
