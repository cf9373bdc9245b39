"""Identity stamping and the rules for writes to AccessRequests, decided without I/O.

The webhook adapts AdmissionReviews to these functions: `/mutate` applies the JSON patches
from `stamp_*`, `/validate` refuses when `check_*` returns a violation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jitgate.canonical import digest
from jitgate.clock import format_time
from jitgate.lifecycle import (
    CANCEL_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKED_BY_ANNOTATION,
)
from jitgate.models import AccessPolicy, AccessRequestSpec, Approval
from jitgate.policy import may_approve

JsonPatch = list[dict[str, Any]]


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]


def spec_digest(spec: AccessRequestSpec) -> str:
    """The digest an approver's decision is bound to: the spec as stored, normalised."""
    return digest(spec)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def stamp_requester(raw_spec: dict[str, Any], who: Identity) -> JsonPatch:
    """On CREATE: the requester is whoever authenticated, whatever the object says."""
    value = {"user": who.user, "groups": list(who.groups)}
    op = "replace" if "requester" in raw_spec else "add"
    return [{"op": op, "path": "/spec/requester", "value": value}]


def stamp_new_approvals(
    old_approvals: Sequence[dict[str, Any]],
    new_approvals: Sequence[dict[str, Any]],
    who: Identity,
    now: dt.datetime,
    digest_of_spec: str,
) -> JsonPatch:
    """On a status UPDATE: each appended approval gets the approver's identity and time."""
    stamp = {
        "user": who.user,
        "groups": list(who.groups),
        "time": format_time(now),
        "specDigest": digest_of_spec,
    }
    patch: JsonPatch = []
    for index in range(len(old_approvals), len(new_approvals)):
        entry = new_approvals[index]
        if not isinstance(entry, dict):
            continue  # validation refuses it with a clear message
        patch.append(
            {"op": "replace", "path": f"/status/approvals/{index}", "value": {**entry, **stamp}}
        )
    return patch


def stamp_annotations(
    old_annotations: dict[str, str], new_annotations: dict[str, str], who: Identity
) -> JsonPatch:
    """Record who asked to cancel or revoke, so the operator never trusts a typed name."""
    patch: JsonPatch = []
    for request, by in (
        (CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION),
        (REVOKE_ANNOTATION, REVOKED_BY_ANNOTATION),
    ):
        newly_set = request in new_annotations and request not in old_annotations
        if newly_set or (
            by in new_annotations and new_annotations.get(by) != old_annotations.get(by)
        ):
            op = "replace" if by in new_annotations else "add"
            patch.append(
                {"op": op, "path": f"/metadata/annotations/{_escape(by)}", "value": who.user}
            )
    return patch


def check_approval_append(
    *,
    phase: str | None,
    old_approvals: Sequence[Approval],
    new_approvals: Sequence[Approval],
    requester: str,
    who: Identity,
    policy: AccessPolicy | None,
    digest_of_spec: str,
) -> str | None:
    """Why this approvals change is refused, or None when it is one valid new decision."""
    if len(new_approvals) < len(old_approvals) or any(
        old != new for old, new in zip(old_approvals, new_approvals, strict=False)
    ):
        return "earlier approvals cannot be edited or removed; approvals are append-only"
    added = new_approvals[len(old_approvals) :]
    if not added:
        return None
    if len(added) > 1:
        return "add one approval at a time"
    if phase != "Pending":
        state = phase or "not yet Pending"
        return f"the request is {state}, so it can no longer be approved or denied"
    entry = added[0]
    if entry.user != who.user:
        return f"an approval must be made as the authenticated user {who.user}, not {entry.user}"
    if entry.spec_digest != digest_of_spec:
        return "the approval does not match the request's current spec"
    if any(existing.user == who.user for existing in old_approvals):
        return f"{who.user} has already decided on this request"
    if policy is None:
        return "the policy governing this request is unknown, so no approval can be checked"
    if who.user == requester and not policy.spec.allow_self_approval:
        return (
            f"{who.user} requested this access and cannot approve it "
            f"(AccessPolicy {policy.metadata.name} does not allow self-approval)"
        )
    if not may_approve(policy, who.user, who.groups):
        return f"{who.user} is not an approver under AccessPolicy {policy.metadata.name}"
    return None


def check_annotation_request(
    *,
    annotation: str,
    phase: str | None,
    requester: str,
    who: Identity,
    policy: AccessPolicy | None,
) -> str | None:
    """Only the requester or an approver may ask to cancel (Pending) or revoke (Approved)."""
    allowed_phase = "Pending" if annotation == CANCEL_ANNOTATION else "Approved"
    verb, done = (
        ("cancel", "cancelled") if annotation == CANCEL_ANNOTATION else ("revoke", "revoked")
    )
    if phase != allowed_phase:
        article = "an" if allowed_phase[0] in "AEIOU" else "a"
        return f"only {article} {allowed_phase} request can be {done}; this one is {phase or 'new'}"
    if who.user == requester:
        return None
    if policy is not None and may_approve(policy, who.user, who.groups):
        return None
    return f"only the requester or an approver may {verb} this request"
