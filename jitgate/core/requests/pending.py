"""A Pending request: each new approval recorded once, then Approved, Denied, Expired or
Cancelled, or still waiting.

Approvals are recorded from `observedApprovals` on, so a step retried after a crash records
exactly the entries the stored status has not yet counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

from jitgate.core import extensions
from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import (
    AccessRequest,
    AccessRequestStatus,
    AutoApproval,
    DenialHold,
    RequestPhase,
)
from jitgate.core.clock import format_time
from jitgate.core.durations import format_duration
from jitgate.core.events import (
    Actor,
    Record,
    actor_of,
    approval_record,
    governing_names,
    named,
    request_record,
)
from jitgate.core.grants import plan_grant
from jitgate.core.policy import Governing, Window, describe_policies, may_approve
from jitgate.core.refusals import Refusal
from jitgate.core.requests import auto
from jitgate.core.requests import windows as scheduled
from jitgate.core.requests.after_denial import (
    DENIED_BY_APPROVER,
    counts_toward,
    describe_hold,
    hold_for,
)
from jitgate.core.requests.annotations import CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION
from jitgate.core.requests.step import APPROVED, Notice, Step, World, set_condition, to_phase
from jitgate.core.requests.tally import (
    Count,
    Requirement,
    Tally,
    decisive_index,
    pending_expired,
    tally,
)


def _tally(
    request: AccessRequest,
    governing: Governing | None,
    windows: Mapping[str, Window],
    hold: DenialHold | None,
    by_rule: frozenset[str],
) -> Tally | None:
    requester = request.spec.requester
    if governing is None or requester is None:
        return None
    status = request.status
    held = (
        [Requirement("", 1, partial(counts_toward, hold), f"after {hold.denied_by}'s denial")]
        if hold is not None
        else []
    )
    return tally(
        status.approvals,
        requester=requester.user,
        requirements=[
            *(
                Requirement(
                    name,
                    0
                    if name in by_rule
                    else scheduled.required_now(
                        windows, name, status.required_by(name) or policy.spec.required_approvals
                    ),
                    partial(may_approve, policy),
                )
                for name, policy in zip(governing.names, governing.policies, strict=True)
            ),
            *held,
        ],
        allow_self_approval=governing.refusing_self_approval() is None,
        spec_digest=spec_digest(request.spec),
        deadline=status.pending_deadline,
    )


def _gone(world: World, names: tuple[str, ...]) -> str:
    missing = world.missing(names)
    if not missing:
        return "no AccessPolicy is recorded for the request"
    return f"{describe_policies(missing)} no longer exist{'s' if len(missing) == 1 else ''}"


def _approval_records(
    request: AccessRequest,
    world: World,
    governing: Governing | None,
    result: Tally | None,
    now: dt.datetime,
) -> list[Record]:
    approvals = request.status.approvals
    observed = min(request.status.observed_approvals or 0, len(approvals))
    ignored = {item.index: item.why for item in result.ignored} if result else {}
    decisive = decisive_index(approvals, result) if result else None
    records = []
    for index in range(observed, len(approvals)):
        approval = approvals[index]
        why = ignored.get(index)
        if result is None:
            why = _gone(world, request.status.policy_names)
        elif decisive is not None and index > decisive:
            why = "the request was already decided"
        counted_for = (
            ()
            if why is not None or governing is None
            else tuple(
                p.metadata.name or ""
                for p in governing.approving(approval.user or "", approval.groups)
            )
        )
        records.append(
            approval_record(
                request,
                index,
                approval,
                now,
                policies=governing.policies if governing else (),
                counted_for=counted_for,
                ignored_because=why,
            )
        )
    return records


def _finish(
    request: AccessRequest,
    world: World,
    records: list[Record],
    phase: RequestPhase,
    reason: str,
    message: str,
    kind: str,
    actor: Actor | None,
) -> Step:
    """Denied, Expired or Cancelled while Pending."""
    status = request.status
    record = request_record(
        kind,
        request,
        world.now,
        actor=actor,
        reason=message,
        context={"cause": reason, **governing_names(status.policy_names)},
    )
    return Step(
        records=(*records, record),
        status=to_phase(
            status.phase,
            phase,
            message=message,
            observed_approvals=len(status.approvals),
            conditions=set_condition(
                status.conditions, APPROVED, "False", reason, message, world.now
            ),
        ),
        notices=(Notice(phase, message, warning=phase != "Cancelled"),),
        notify="denied" if phase == "Denied" else "expired" if phase == "Expired" else None,
        wake_at=world.now + world.retention,
    )


def pending(request: AccessRequest, world: World) -> Step:
    now = world.now
    status = request.status
    governing = world.governing(status.policy_names)
    deadline = status.pending_deadline
    windows = scheduled.by_name(governing, now) if governing is not None else {}
    found = (
        auto.evaluate(
            request,
            world,
            governing,
            governing.grant_duration(request.spec),
            status.auto_approvals,
        )
        if governing is not None
        else auto.NOTHING
    )
    by_rule = [*status.auto_approvals, *found.approvals]
    wake_at = scheduled.wake_at(windows, deadline)
    if found.look_again is not None and (wake_at is None or found.look_again < wake_at):
        wake_at = found.look_again
    # Once held, always held: the denied request's deletion or a policy edit lifts nothing.
    hold = status.after_denial or (
        hold_for(request, governing, world.denials, now) if governing else None
    )
    result = _tally(request, governing, windows, hold, auto.counting(by_rule, windows))
    records = [*found.records, *_approval_records(request, world, governing, result, now)]
    step = _pending(request, world, governing, windows, result, records, wake_at, by_rule, hold)
    if not found.approvals or step.status is None:
        return step
    written = "conditions" in step.status.model_fields_set
    conditions = auto.condition(
        step.status.conditions if written else status.conditions, found, now
    )
    return replace(
        step,
        status=step.status.model_copy(update={"auto_approvals": by_rule, "conditions": conditions}),
    )


def _pending(
    request: AccessRequest,
    world: World,
    governing: Governing | None,
    windows: Mapping[str, Window],
    result: Tally | None,
    records: list[Record],
    wake_at: dt.datetime | None,
    by_rule: Sequence[AutoApproval],
    hold: DenialHold | None,
) -> Step:
    now = world.now
    status = request.status
    approvals = status.approvals
    names = status.policy_names
    deadline = status.pending_deadline
    annotations = request.metadata.annotations
    if CANCEL_ANNOTATION in annotations and annotations.get(CANCELLED_BY_ANNOTATION):
        by = annotations[CANCELLED_BY_ANNOTATION]
        return _finish(
            request,
            world,
            records,
            "Cancelled",
            "Cancelled",
            f"cancelled by {by}",
            "request.cancelled",
            named(by),
        )
    if result is not None and result.outcome == "Denied":
        denier = approvals[decisive_index(approvals, result) or 0]
        comment = f": {denier.comment}" if denier.comment else ""
        return _finish(
            request,
            world,
            records,
            "Denied",
            DENIED_BY_APPROVER,
            f"denied by {result.denied_by}{comment}",
            "request.denied",
            actor_of(denier),
        )
    closed = next((w for w in windows.values() if w.denies), None)
    if closed is not None:
        return _finish(
            request,
            world,
            records,
            "Denied",
            "OutsideWindow",
            f"not approved before the window closed: {closed.closed_message()}; ask again then",
            "request.denied",
            None,
        )
    if result is not None and result.outcome == "Approved" and governing is not None:
        return _approve(request, world, governing, result, records, windows, by_rule)
    if deadline is not None and pending_expired(deadline, now):
        return _finish(
            request,
            world,
            records,
            "Expired",
            "PendingTimeout",
            f"no decision before the pending deadline {format_time(deadline)}",
            "request.expired",
            None,
        )
    newly_held = hold if hold is not None and status.after_denial is None else None
    message = _progress(result) + (f"; waiting until {format_time(deadline)}" if deadline else "")
    message += "".join(scheduled.outside_note(windows, name) for name in names)
    # A window that opened or closed changes the approvals needed: say so even without news.
    if not records and newly_held is None and (not windows or message == status.message):
        return Step(wake_at=wake_at)
    if governing is None:
        message = (
            f"{_gone(world, names)}, so no approval can be checked; the request expires unanswered"
        )
    notice = Notice("ApprovalRecorded" if records else "ApprovalsNeeded", message)
    if newly_held is not None:
        notice = Notice("HeldAfterDenial", f"needs {describe_hold(newly_held)}; {message}")
    return Step(
        records=tuple(records),
        status=AccessRequestStatus(
            observed_approvals=len(approvals),
            message=message,
            **({"after_denial": newly_held} if newly_held else {}),
        ),
        notices=(notice,),
        wake_at=wake_at,
    )


def _progress(result: Tally | None) -> str:
    """`1 of 2 approvals (bob)`; per policy when several govern."""
    counts = result.counts if result else ()

    def one(count: Count) -> str:
        plural = "s" if count.required > 1 else ""
        who = f" ({', '.join(count.approved_by)})" if count.approved_by else ""
        return f"{len(count.approved_by)} of {count.required} approval{plural}{who}"

    if len(counts) == 1:
        return one(counts[0])
    return "; ".join(f"{count.label}: {one(count)}" for count in counts)


def _approve(
    request: AccessRequest,
    world: World,
    governing: Governing,
    result: Tally,
    records: list[Record],
    windows: Mapping[str, Window],
    by_rule: Sequence[AutoApproval],
) -> Step:
    now = world.now
    status = request.status
    approvals = status.approvals
    decisive = decisive_index(approvals, result)  # None: rules approved without anyone
    ignored = {item.index for item in result.ignored}
    last = -1 if decisive is None else decisive
    chain = [a for i, a in enumerate(approvals[: last + 1]) if i not in ignored]
    rules = [a for a in by_rule if a.policy in governing.names]
    duration = governing.grant_duration(request.spec)
    waived = scheduled.outside_met(windows, result.counts)
    start = now.replace(microsecond=0)
    ends = scheduled.grant_end(windows, waived, start)
    until = ""
    if ends is not None and ends[0] - start < duration:
        duration = ends[0] - start
        until = f", until the window of AccessPolicy {ends[1]} closes"
    by = [*result.approved_by, *([auto.describe(rules)] if rules else [])]
    message = (
        f"approved by {', '.join(by)} under {governing.describe()} "
        f"for {format_duration(duration)}{until}"
    )
    extension = None
    if request.spec.extends is not None:
        live = extensions.still_live(world.extended, now)
        if isinstance(live, Refusal):
            why = f"{live.message}, so the extension cannot continue it"
            return _finish(
                request, world, records, "Denied", live.reason, why, "request.denied", None
            )
        extension = extensions.window(request.spec, live, governing)
        message = (
            f"approved by {', '.join(result.approved_by)} under {governing.describe()}: "
            f"extends {request.spec.extends.name} until {format_time(extension.until)}"
        )
    approved = request_record(
        "request.approved",
        request,
        now,
        actor=None if decisive is None else actor_of(approvals[decisive]),
        reason=message,
        context={
            "approvedBy": list(result.approved_by),
            **({"autoApprovals": [a.to_wire() for a in rules]} if rules else {}),
            **governing_names(governing.names),
            "breakGlass": False,
        },
    )
    pending_since = next(
        (c.last_transition_time for c in status.conditions if c.type == APPROVED), None
    )
    return Step(
        records=(*records, approved),
        status=to_phase(
            status.phase,
            "Approved",
            observed_approvals=len(approvals),
            message=message,
            conditions=set_condition(status.conditions, APPROVED, "True", "Approved", message, now),
        ),
        grant=plan_grant(
            request,
            now=now,
            duration=duration,
            policies=governing.names,
            approvals=chain,
            break_glass=False,
            approved_outside_window=waived,
            auto_approvals=rules,
            extension=extension,
        ),
        notices=(Notice("Approved", message),),
        notify="approved",
        approved_after=(now - pending_since) if pending_since else None,
    )
