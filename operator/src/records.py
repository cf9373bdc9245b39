"""The audit events the operator writes, built from API objects without I/O.

Each event comes with a key naming the fact it records (`<uid>/request.approval/2`), so a
retried handler can skip what it already wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jitgate.audit.model import Actor, AuditEvent
from jitgate.core.api import AccessPolicy, AccessRequest, Approval, Grant, ObjectMeta, Requester
from jitgate.core.clock import format_time


@dataclass(frozen=True)
class Record:
    key: str
    event: AuditEvent


def actor_of(who: Requester | Approval | None) -> Actor | None:
    if who is None or not who.user:
        return None
    return Actor(user=who.user, groups=tuple(who.groups))


def named(user: str | None) -> Actor | None:
    """An actor known only by name, e.g. from a webhook-stamped annotation."""
    return Actor(user=user) if user else None


def _uid(request: AccessRequest) -> str:
    return request.metadata.uid or f"{request.metadata.namespace}/{request.metadata.name}"


def request_record(
    kind: str,
    request: AccessRequest,
    now: dt.datetime,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    context: dict[str, Any] | None = None,
    grant: str | None = None,
    key_suffix: str = "",
) -> Record:
    requester = request.spec.requester
    base: dict[str, Any] = {"requester": requester.user if requester else None}
    event = AuditEvent(
        type=kind,
        time=now,
        actor=actor,
        namespace=request.metadata.namespace,
        request=request.metadata.name,
        grant=grant,
        reason=reason,
        context={**base, **(context or {})},
    )
    return Record(f"{_uid(request)}/{kind}{key_suffix}", event)


def raw_request_record(
    kind: str,
    meta: ObjectMeta,
    now: dt.datetime,
    *,
    reason: str,
    context: dict[str, Any],
) -> Record:
    """A record about a request whose spec could not be read."""
    event = AuditEvent(
        type=kind,
        time=now,
        namespace=meta.namespace,
        request=meta.name,
        reason=reason,
        context=context,
    )
    return Record(f"{meta.uid or f'{meta.namespace}/{meta.name}'}/{kind}", event)


def policy_context(policy: AccessPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"name": policy.metadata.name, "spec": policy.spec.to_wire()}


def approval_record(
    request: AccessRequest,
    index: int,
    approval: Approval,
    now: dt.datetime,
    *,
    policy: AccessPolicy | None,
    counted: bool,
    ignored_because: str | None,
) -> Record:
    """What the approver decided, and the spec and policy they decided on."""
    context: dict[str, Any] = {
        "index": index,
        "decision": approval.decision,
        "decidedAt": format_time(approval.time) if approval.time else None,
        "specDigest": approval.spec_digest,
        "counted": counted,
        "spec": request.spec.to_wire(),
        "policy": policy_context(policy),
        "requiredApprovals": request.status.required_approvals,
    }
    if ignored_because:
        context["ignored"] = ignored_because
    return request_record(
        "request.approval",
        request,
        now,
        actor=actor_of(approval),
        reason=approval.comment or None,
        context=context,
        key_suffix=f"/{index}",
    )


def grant_context(grant: Grant) -> dict[str, Any]:
    spec = grant.spec
    return {
        "user": spec.user,
        "actions": [action.to_wire() for action in spec.actions],
        "notBefore": format_time(spec.not_before),
        "expiresAt": format_time(spec.expires_at),
        "policy": spec.policy,
        "approvals": [approval.to_wire() for approval in spec.approvals],
        "breakGlass": spec.break_glass,
    }


def grant_record(
    kind: str,
    grant: Grant,
    now: dt.datetime,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Record:
    uid = grant.metadata.uid or f"{grant.metadata.namespace}/{grant.metadata.name}"
    event = AuditEvent(
        type=kind,
        time=now,
        actor=actor,
        namespace=grant.metadata.namespace,
        request=grant.spec.access_request.name,
        grant=grant.metadata.name,
        reason=reason,
        context={**grant_context(grant), **(extra or {})},
    )
    return Record(f"{uid}/{kind}", event)
