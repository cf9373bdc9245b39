"""Identity stamping and the rules for writes to AccessRequests, decided without I/O.

The webhook adapts AdmissionReviews to these functions: `/mutate` applies the JSON patches
from `stamp_*`, `/validate` refuses when `check_*` returns a violation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jitgate.core.api import AccessPolicy, AccessRequestSpec, Approval
from jitgate.core.canonical import digest
from jitgate.core.clock import format_time
from jitgate.core.policy import may_approve
from jitgate.core.refusals import Refusal
from jitgate.core.requests.annotations import (
    CANCEL_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    STAMPED_ANNOTATIONS,
)

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
    old_annotations: Mapping[str, str], new_annotations: Mapping[str, str], who: Identity
) -> JsonPatch:
    """Record who asked to cancel, revoke or review, so the operator never trusts a typed
    name: each of `STAMPED_ANNOTATIONS` newly set, or its *-by annotation typed, gets the
    authenticated user as its *-by annotation."""
    patch: JsonPatch = []
    for request, by in STAMPED_ANNOTATIONS:
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


def check_review(
    *,
    value: str | None,
    phase: str | None,
    break_glass: bool,
    requester: str,
    who: Identity,
    policy: AccessPolicy | None,
) -> str | None:
    """Only an approver other than the requester may review a break-glass request, once it
    was approved (Approved, Expired or Revoked)."""
    if value != "true":
        return f'set annotation {REVIEW_ANNOTATION} to "true" to review this request'
    if phase not in REVIEWABLE_PHASES:
        return (
            "only an Approved, Expired or Revoked request can be reviewed; "
            f"this one is {phase or 'new'}"
        )
    if not break_glass:
        return "only a break-glass request needs a review; its approvers already approved this one"
    if who.user == requester:
        return f"{who.user} activated this break-glass grant and cannot review it"
    if policy is None:
        return "the policy governing this request is unknown, so no reviewer can be checked"
    if not may_approve(policy, who.user, who.groups):
        return (
            f"{who.user} is not an approver under AccessPolicy {policy.metadata.name}, "
            "so cannot review this request"
        )
    return None


_REVIEW_KEYS = (REVIEW_ANNOTATION, REVIEW_COMMENT_ANNOTATION, REVIEWED_BY_ANNOTATION)


def check_annotation_changes(
    old: Mapping[str, str],
    new: Mapping[str, str],
    *,
    who: Identity,
    requester: str,
    phase: str | None,
    break_glass: bool,
    policy: Callable[[], AccessPolicy | None],
) -> Refusal | None:
    """Why this change of a request's annotations is refused, or None.

    A *-by annotation must name the authenticated user (the mutating webhook stamps it);
    asking to cancel or revoke is checked by `check_annotation_request`, a review by
    `check_review`; and once a review is stamped, its annotations never change again.
    """
    reviewer = old.get(REVIEWED_BY_ANNOTATION)
    if reviewer is not None and any(new.get(key) != old.get(key) for key in _REVIEW_KEYS):
        return Refusal(
            f"this request was already reviewed by {reviewer}; a review cannot be changed "
            "or withdrawn",
            "AlreadyReviewed",
        )
    for asked, by in STAMPED_ANNOTATIONS:
        stamped = by in new and new.get(by) != old.get(by)
        if stamped and new[by] != who.user:
            return Refusal(
                f"annotation {by} must name the authenticated user {who.user}; jitgate sets it",
                "AnnotationForged",
            )
        asking = asked in new and new.get(asked) != old.get(asked)
        if asked == REVIEW_ANNOTATION:
            # A stamped reviewer is a review, with or without the request annotation.
            why = (
                check_review(
                    value=new.get(asked),
                    phase=phase,
                    break_glass=break_glass,
                    requester=requester,
                    who=who,
                    policy=policy(),
                )
                if asking or stamped
                else None
            )
        elif asking:
            why = check_annotation_request(
                annotation=asked, phase=phase, requester=requester, who=who, policy=policy()
            )
        else:
            why = None
        if why is not None:
            return Refusal(why, "NotAllowed")
    return None


def check_created_annotations(annotations: Mapping[str, str]) -> str | None:
    """A new request cannot arrive reviewed: nothing was approved yet."""
    if REVIEW_ANNOTATION in annotations or REVIEWED_BY_ANNOTATION in annotations:
        return "only an Approved, Expired or Revoked request can be reviewed; this one is new"
    return None
