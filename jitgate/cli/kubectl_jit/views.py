"""How `kubectl jit list` and `show` present AccessRequests; pure, given the time now."""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Sequence

from jitgate.cli import render
from jitgate.core.actions import requested_summary
from jitgate.core.api import TERMINAL_PHASES, AccessRequest, RequestedAction
from jitgate.core.clock import format_time
from jitgate.core.requests.after_denial import describe_hold
from jitgate.core.requests.annotations import (
    CANCELLED_BY_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    REVOKE_REASON_ANNOTATION,
    REVOKED_BY_ANNOTATION,
)
from jitgate.core.requests.step import APPROVED, GRANTED

NONE = "<none>"
# The grant length when no duration was asked for and neither the policy nor the grant is
# readable by the caller.
_UNKNOWN_DEFAULT = "the policy's default (you may not read the policy)"


def human_duration(delta: dt.timedelta) -> str:
    """The compact duration `kubectl get` prints in AGE columns (`45s`, `3m20s`, `2d4h`)."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def describe_action(action: RequestedAction) -> str:
    """`exec pod/web-0`, `delete deployment/web`, `delete pod/*` (any pod)."""
    return requested_summary(action)


def describe_action_long(action: RequestedAction) -> str:
    """The one-line summary plus container and exact command, for `show`."""
    extras = []
    if action.container:
        extras.append(f"container {action.container}")
    if action.command is not None:
        extras.append(f"command: {shlex.join(action.command)}")
    if action.verb in ("exec", "attach") and action.container is None:
        extras.append("any container")
    if action.verb == "exec" and action.command is None:
        extras.append("any command, interactive")
    if action.verb == "scale":
        extras.append(
            f"to {action.replicas} replicas" if action.replicas is not None else "any count"
        )
    suffix = f" ({', '.join(extras)})" if extras else ""
    return describe_action(action) + suffix


def approvers_so_far(request: AccessRequest) -> list[str]:
    """The distinct users who approved, in the order they did."""
    approvers: list[str] = []
    for index, approval in enumerate(request.status.approvals):
        who = approval.user or f"#{index}"
        if approval.decision == "Approve" and who not in approvers:
            approvers.append(who)
    return approvers


def approvals_count(request: AccessRequest) -> str:
    """`n/m`: distinct approvers so far out of the approvals the policy requires, and
    `+ rule NAME` for each autoApprove rule that approved."""
    required = request.status.required_approvals
    count = f"{len(approvers_so_far(request))}/{required if required is not None else '?'}"
    return count + "".join(f" + rule {a.rule}" for a in request.status.auto_approvals)


def approvals_needed(request: AccessRequest) -> str:
    """`approvals_count`, and who else must approve after an earlier denial."""
    hold = request.status.after_denial
    if hold is None:
        return approvals_count(request)
    who = " or ".join([*hold.approvers.users, *(f"group {g}" for g in hold.approvers.groups)])
    return f"{approvals_count(request)} + 1 from {who} (after a denial)"


def ended_at(request: AccessRequest) -> dt.datetime | None:
    """When an ended request ended: its grant revoked or expired (the Granted condition turned
    False), or it was denied, expired or cancelled unanswered (Approved turned False)."""
    if request.status.phase not in TERMINAL_PHASES:
        return None
    kind = GRANTED if request.status.grant is not None else APPROVED
    condition = next((c for c in request.status.conditions if c.type == kind), None)
    if condition is not None and condition.status == "False":
        return condition.last_transition_time
    return None


def _policies_field(request: AccessRequest) -> tuple[str, str]:
    """`Policy: production`, or every governing policy with the approvals each needs (each
    must be satisfied)."""
    status = request.status
    if len(status.policy_names) <= 1:
        return "Policy", (status.policy_names or (NONE,))[0]
    needs = [
        f"{p.name} ({p.required_approvals} approval{'s' if p.required_approvals > 1 else ''})"
        for p in status.policies
    ]
    return "Policies", ", ".join(needs) + " — every one must be satisfied"


def review_state(request: AccessRequest) -> str | None:
    """`review required` or `reviewed by X` for a break-glass request once it was approved."""
    if not request.spec.break_glass:
        return None
    reviewer = request.metadata.annotations.get(REVIEWED_BY_ANNOTATION)
    if reviewer:
        return f"reviewed by {reviewer}"
    return "review required" if request.status.phase in REVIEWABLE_PHASES else None


def expires_at(request: AccessRequest) -> dt.datetime | None:
    """When the grant ends (Approved) or the request times out unanswered (Pending)."""
    status = request.status
    if status.phase == "Approved" and status.grant is not None:
        return status.grant.expires_at
    if status.phase in (None, "Pending"):
        return status.pending_deadline
    return None


def _until(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "-"
    return human_duration(when - now) if when > now else "now"


def _age(request: AccessRequest, now: dt.datetime) -> str:
    created = request.metadata.creation_timestamp
    return human_duration(now - created) if created is not None else "<unknown>"


def table_row(
    request: AccessRequest, now: dt.datetime, *, with_namespace: bool, wide: bool
) -> list[str]:
    status = request.status
    requester = request.spec.requester.user if request.spec.requester else NONE
    row = [
        request.metadata.name or "",
        status.phase or NONE,
        requester,
        ", ".join(describe_action(action) for action in request.spec.actions),
        # A break-glass grant needs no approvals, only a review afterwards.
        review_state(request) or approvals_count(request),
        _until(expires_at(request), now),
        _age(request, now),
    ]
    if wide:
        row += [
            ",".join(status.policy_names) or NONE,
            status.grant.name if status.grant else NONE,
            request.spec.ticket or NONE,
            request.spec.reason,
        ]
    return [request.metadata.namespace or "", *row] if with_namespace else row


def table_header(*, with_namespace: bool, wide: bool) -> list[str]:
    header = ["NAME", "PHASE", "REQUESTER", "ACTIONS", "APPROVALS", "EXPIRES", "AGE"]
    if wide:
        header += ["POLICY", "GRANT", "TICKET", "REASON"]
    return ["NAMESPACE", *header] if with_namespace else header


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded like kubectl's tabwriter: three spaces between columns."""
    return render.table(rows, gap=3)


def _when(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return NONE
    delta = value - now
    relative = f"in {human_duration(delta)}" if delta.total_seconds() > 0 else None
    relative = relative or f"{human_duration(-delta)} ago"
    return f"{format_time(value)} ({relative})"


def _grant_state(request: AccessRequest, now: dt.datetime) -> str:
    """`NAME, until T (in 12m)` while live; `NAME, revoked at T (3m ago)` once it ended."""
    grant, phase = request.status.grant, request.status.phase
    assert grant is not None
    if phase not in ("Revoked", "Expired"):
        return f"{grant.name}, until {_when(grant.expires_at, now)}"
    ended = ended_at(request) or (grant.expires_at if phase == "Expired" else None)
    at = f" at {_when(ended, now)}" if ended is not None else ""
    return f"{grant.name}, {phase.lower()}{at}"


def render_show(
    request: AccessRequest,
    now: dt.datetime,
    *,
    duration: str | None = None,
    chain: Sequence[str] = (),
    uses: int | None = None,
    run: Sequence[str] = (),
) -> str:
    """A `kubectl describe`-style view: what is asked, why, who decided, and the grant.
    `duration` is the grant's real length where the caller could work it out; `chain` the
    requests of its extension chain, first to last; `uses` the grant's counted uses; `run`
    the commands its live grant allows (`jitgate.core.next_steps`)."""
    spec, status, meta = request.spec, request.status, request.metadata
    fields: list[tuple[str, str]] = [
        ("Name", meta.name or ""),
        ("Namespace", meta.namespace or ""),
        ("Phase", status.phase or "New (not yet seen by the operator)"),
    ]
    if status.message:
        fields.append(("Message", status.message))
    if spec.requester is not None:
        groups = ", ".join(spec.requester.groups) or NONE
        fields.append(("Requester", f"{spec.requester.user} (groups: {groups})"))
    else:
        fields.append(("Requester", NONE))
    fields += [
        ("Created", _when(meta.creation_timestamp, now)),
        ("Reason", spec.reason),
        ("Ticket", spec.ticket or NONE),
        (
            "Duration",
            duration or spec.duration or "the policy's default (the policy is not readable)",
        ),
    ]
    if spec.max_uses is not None:
        counted = f" ({uses} used)" if uses is not None else ""
        fields.append(("Max uses", f"{spec.max_uses}{counted}"))
    if spec.start_at is not None:
        fields.append(("Starts at", _when(spec.start_at, now)))
    if spec.extends is not None:
        fields.append(("Extends", spec.extends.name))
    if len(chain) > 1:
        fields.append(("Chain", " → ".join(f"{n} (this)" if n == meta.name else n for n in chain)))
    if spec.break_glass:
        fields.append(("Break glass", "yes (emergency access, flagged for review)"))
        review = review_state(request)
        comment = meta.annotations.get(REVIEW_COMMENT_ANNOTATION)
        if review == "review required":
            where = f" -n {meta.namespace}" if meta.namespace else ""
            review += f" (an approver runs: kubectl jit review {meta.name}{where})"
        elif review is not None and comment:
            review += f': "{comment}"'
        if review is not None:
            fields.append(("Review", review))
    fields += [
        _policies_field(request),
        ("Approvals", f"{approvals_count(request)} (given/required)"),
    ]
    if status.after_denial is not None:
        fields.append(("After denial", f"also needs {describe_hold(status.after_denial)}"))
    if status.phase in (None, "Pending"):
        fields.append(("Pending until", _when(status.pending_deadline, now)))
    if status.grant is not None:
        fields.append(("Grant", _grant_state(request, now)))
    for annotation, label in (
        (CANCELLED_BY_ANNOTATION, "Cancelled by"),
        (REVOKED_BY_ANNOTATION, "Revoked by"),
        (REVOKE_REASON_ANNOTATION, "Revoke reason"),
    ):
        if annotation in meta.annotations:
            fields.append((label, meta.annotations[annotation]))
    width = max(len(label) for label, _ in fields) + 3  # the colon, then two spaces
    lines = [f"{label + ':':<{width}}{value}" for label, value in fields]
    lines.append("Actions:")
    lines += [f"  {describe_action_long(action)}" for action in spec.actions]
    if run:
        lines.append("Run:")
        lines += [f"  {line}" for line in run]
    decided = status.approvals or status.auto_approvals
    lines.append("Decisions:" if decided else f"Decisions:{' ' * (width - 10)}{NONE}")
    for approval in status.approvals:
        comment = f'  "{approval.comment}"' if approval.comment else ""
        when = format_time(approval.time) if approval.time else "<unstamped>"
        via = f"  (via {approval.via})" if approval.via else ""
        who = approval.user or "<unstamped>"
        lines.append(f"  {approval.decision:<8} {who}  {when}{via}{comment}")
    for auto in status.auto_approvals:
        # A rule's approval: which rule, and the digest of what it saw (in the audit log).
        lines.append(
            f"  {'Approve':<8} rule {auto.rule} of AccessPolicy {auto.policy}  "
            f"{format_time(auto.time)}  inputs {auto.inputs_digest}"
        )
    if status.conditions:
        rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]]
        for condition in status.conditions:
            changed = condition.last_transition_time
            age = human_duration(now - changed) if changed else "<unknown>"
            rows.append(
                [condition.type, condition.status, condition.reason, age, condition.message]
            )
        lines.append("Conditions:")
        lines += ["  " + line for line in render_table(rows).splitlines()]
    return "\n".join(lines) + "\n"
