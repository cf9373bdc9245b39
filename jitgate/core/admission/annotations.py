"""Annotation writes to an AccessRequest: cancel, revoke and break-glass reviews.

Asking to cancel (Pending) or revoke (Approved) is for the requester or an approver of any
governing policy (either only takes access away); a break-glass request is reviewed once, by
an approver of every governing policy other than the requester; a *-by
annotation must name the authenticated user (`/mutate` stamps it), and a stamped review
never changes again. A new request cannot arrive reviewed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from jitgate.core.admission.writes import Identity
from jitgate.core.policy import Governing
from jitgate.core.refusals import Refusal
from jitgate.core.requests.annotations import (
    CANCEL_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    STAMPED_ANNOTATIONS,
)


def check_annotation_request(
    *,
    annotation: str,
    phase: str | None,
    requester: str,
    who: Identity,
    governing: Governing | None,
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
    if governing is not None and governing.approving(who.user, who.groups):
        return None
    return f"only the requester or an approver may {verb} this request"


def check_review(
    *,
    value: str | None,
    phase: str | None,
    break_glass: bool,
    requester: str,
    who: Identity,
    governing: Governing | None,
) -> str | None:
    """Only an approver of every governing policy, other than the requester, may review a
    break-glass request, once it was approved (Approved, Expired or Revoked): the review
    clears the flag each policy's approvers are meant to see."""
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
    if governing is None:
        return "the policies governing this request are unknown, so no reviewer can be checked"
    approving = governing.approving(who.user, who.groups)
    refusing = next((p for p in governing.policies if p not in approving), None)
    if refusing is not None:
        return (
            f"{who.user} is not an approver under AccessPolicy {refusing.metadata.name}, "
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
    governing: Callable[[], Governing | None],
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
                    governing=governing(),
                )
                if asking or stamped
                else None
            )
        elif asking:
            why = check_annotation_request(
                annotation=asked, phase=phase, requester=requester, who=who, governing=governing()
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
