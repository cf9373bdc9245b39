"""The AccessRequest state machine: phases, approval tallies and allowed transitions.

Pending ──approvals reach threshold──▶ Approved ──grant expires──▶ Expired
   │  └──any eligible Deny──▶ Denied           └──grant deleted / revoke──▶ Revoked
   ├──pending deadline passes──▶ Expired
   └──cancel──▶ Cancelled
A request no policy accepts goes straight to Denied; a break-glass request straight to
Approved. Denied, Expired, Revoked and Cancelled are final.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from jitgate.core.api import TERMINAL_PHASES, Approval, RequestPhase

# Users ask the operator to cancel or revoke through these annotations; the webhook stamps
# who asked (the *-by annotations) from the authenticated user.
CANCEL_ANNOTATION = "jitgate.dev/cancel"
REVOKE_ANNOTATION = "jitgate.dev/revoke"
CANCELLED_BY_ANNOTATION = "jitgate.dev/cancelled-by"
REVOKED_BY_ANNOTATION = "jitgate.dev/revoked-by"
# An approver marks a break-glass request reviewed (any phase after it was approved), with an
# optional comment; the webhook stamps the reviewer.
REVIEW_ANNOTATION = "jitgate.dev/review"
REVIEW_COMMENT_ANNOTATION = "jitgate.dev/review-comment"
REVIEWED_BY_ANNOTATION = "jitgate.dev/reviewed-by"
# Each annotation a user sets to ask for something, and the one the webhook stamps with who.
STAMPED_ANNOTATIONS: tuple[tuple[str, str], ...] = (
    (CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION),
    (REVOKE_ANNOTATION, REVOKED_BY_ANNOTATION),
    (REVIEW_ANNOTATION, REVIEWED_BY_ANNOTATION),
)
# The phases a break-glass request can be reviewed in: it was approved, whatever came after.
REVIEWABLE_PHASES: tuple[RequestPhase, ...] = ("Approved", "Expired", "Revoked")

_ALLOWED: dict[RequestPhase | None, frozenset[RequestPhase]] = {
    None: frozenset({"Pending", "Approved", "Denied"}),
    "Pending": frozenset({"Approved", "Denied", "Expired", "Cancelled"}),
    "Approved": frozenset({"Expired", "Revoked"}),
}


class InvalidTransition(ValueError):
    pass


def is_terminal(phase: RequestPhase | None) -> bool:
    return phase in TERMINAL_PHASES


def can_transition(current: RequestPhase | None, target: RequestPhase) -> bool:
    return target in _ALLOWED.get(current, frozenset())


def transition(current: RequestPhase | None, target: RequestPhase) -> RequestPhase:
    if not can_transition(current, target):
        raise InvalidTransition(f"an AccessRequest cannot go from {current or 'new'} to {target}")
    return target


@dataclass(frozen=True)
class Ignored:
    index: int
    user: str
    why: str


@dataclass(frozen=True)
class Tally:
    """The outcome of the approvals so far, and which entries did not count and why."""

    outcome: Literal["Pending", "Approved", "Denied"]
    approved_by: tuple[str, ...]
    denied_by: str | None
    ignored: tuple[Ignored, ...]


def tally(
    approvals: Sequence[Approval],
    *,
    requester: str,
    required: int,
    allow_self_approval: bool,
    is_approver: Callable[[str, Sequence[str]], bool],
    spec_digest: str | None = None,
    deadline: dt.datetime | None = None,
) -> Tally:
    """Count distinct eligible approvals in order; the first eligible Deny denies.

    With `spec_digest`, a decision bound to any other spec does not count; with `deadline`,
    neither does one stamped at or after it (it came too late, whenever it is noticed).
    """
    decided: set[str] = set()
    approved_by: list[str] = []
    ignored: list[Ignored] = []
    for index, approval in enumerate(approvals):
        user = approval.user or ""
        why = None
        if not user:
            why = "no authenticated approver"
        elif spec_digest is not None and approval.spec_digest != spec_digest:
            why = f"{user} decided on a different spec than the request's"
        elif deadline is not None and approval.time is not None and approval.time >= deadline:
            why = f"{user} decided after the pending deadline"
        elif user in decided:
            why = f"{user} already decided"
        elif user == requester and not allow_self_approval:
            why = f"{user} requested it and self-approval is not allowed"
        elif not is_approver(user, approval.groups):
            why = f"{user} is not an approver under the policy"
        if why is not None:
            ignored.append(Ignored(index, user, why))
            continue
        decided.add(user)
        if approval.decision == "Deny":
            return Tally("Denied", tuple(approved_by), user, tuple(ignored))
        approved_by.append(user)
        if len(approved_by) >= required:
            return Tally("Approved", tuple(approved_by), None, tuple(ignored))
    return Tally("Pending", tuple(approved_by), None, tuple(ignored))


def pending_expired(deadline: dt.datetime | None, now: dt.datetime) -> bool:
    return deadline is not None and now >= deadline
