"""Anti-shopping: soon after an approver denies a request, asking again for overlapping actions
needs the denier's side to agree.

A governing AccessPolicy with `afterDenial.cooldown` holds a request in the same namespace whose
actions overlap a request an approver denied (same verb and resource, and a shared object or
one of them naming none) when the denial came no earlier than the cooldown before the request
was created (a denial made while the request waits counts too: asking twice at once is
shopping as well). The held request needs, besides every policy's approvals, one approval
from the denier or from an approver group the denier belongs to (`DenialHold`, kept in
`status.afterDenial` so that `kubectl jit show` and the approver queue say so). Requests by
anyone are held, not just the first requester's: a colleague asking on their behalf is
shopping too. Break-glass is not held (it is loud instead: every approver is told).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jitgate.core.api import AccessRequest, DenialHold, RequestedAction, Subjects
from jitgate.core.clock import format_time
from jitgate.core.durations import parse_duration
from jitgate.core.policy import Governing

DENIED_BY_APPROVER = "DeniedByApprover"  # the Approved condition's reason on such a denial


@dataclass(frozen=True)
class Denial:
    """An approver's denial of a request, as later requests in its namespace are held to it."""

    request: str
    denied_by: str
    groups: tuple[str, ...]  # the denier's authenticated groups when denying
    denied_at: dt.datetime
    actions: tuple[RequestedAction, ...]


def denial_of(request: AccessRequest) -> Denial | None:
    """The approver's denial that ended this request, or None when it was not denied by one
    (a policy refusal, a cancellation or an expiry holds nothing)."""
    status = request.status
    if status.phase != "Denied":
        return None
    condition = next((c for c in status.conditions if c.type == "Approved"), None)
    if condition is None or condition.reason != DENIED_BY_APPROVER:
        return None
    message = status.message or ""
    deny = next(
        (
            a
            for a in status.approvals
            if a.decision == "Deny" and a.user and message.startswith(f"denied by {a.user}")
        ),
        None,
    )
    if deny is None or deny.user is None:
        return None
    when = deny.time or condition.last_transition_time
    if when is None:
        return None
    return Denial(
        request=request.metadata.name or "",
        denied_by=deny.user,
        groups=tuple(deny.groups),
        denied_at=when,
        actions=tuple(request.spec.actions),
    )


def overlaps(one: RequestedAction, other: RequestedAction) -> bool:
    """Whether two actions could allow the same thing: same verb and resource, and a shared
    object or one of them naming none (container and command are not told apart)."""
    if one.verb != other.verb or one.effective_resource != other.effective_resource:
        return False
    return not one.names or not other.names or bool(set(one.names) & set(other.names))


def cooldown(governing: Governing) -> dt.timedelta | None:
    """The longest `afterDenial.cooldown` of the governing policies; None when none has one."""
    found = [
        parse_duration(p.spec.after_denial.cooldown)
        for p in governing.policies
        if p.spec.after_denial is not None
    ]
    return max(found) if found else None


def hold_for(
    request: AccessRequest,
    governing: Governing,
    denials: Iterable[Denial],
    now: dt.datetime,
) -> DenialHold | None:
    """The latest denial this request is held to, or None."""
    window = cooldown(governing)
    if window is None or request.spec.break_glass:
        return None
    created = request.metadata.creation_timestamp or now
    name = request.metadata.name
    held = [
        d
        for d in denials
        if d.request != name
        and created - window <= d.denied_at <= now
        and any(overlaps(a, b) for a in request.spec.actions for b in d.actions)
    ]
    if not held:
        return None
    latest = max(held, key=lambda d: (d.denied_at, d.request))
    approver_groups = {g for p in governing.policies for g in p.spec.approvers.groups}
    return DenialHold(
        request=latest.request,
        denied_by=latest.denied_by,
        denied_at=latest.denied_at,
        approvers=Subjects(
            users=[latest.denied_by],
            groups=sorted(set(latest.groups) & approver_groups),
        ),
    )


def describe_hold(hold: DenialHold) -> str:
    """`1 approval from bob or group sre (bob denied alice-exec-web-0 at …)`."""
    who = [*hold.approvers.users, *(f"group {g}" for g in hold.approvers.groups)]
    return (
        f"1 approval from {' or '.join(who)} "
        f"(after {hold.denied_by} denied {hold.request} at {format_time(hold.denied_at)})"
    )


def counts_toward(hold: DenialHold, user: str, groups: Sequence[str]) -> bool:
    return hold.approvers.includes(user, tuple(groups))
