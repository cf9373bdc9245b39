"""A Pending request: each new approval recorded once, then Approved, Denied, Expired or
Cancelled, or still waiting.

Approvals are recorded from `observedApprovals` on, so a step retried after a crash records
exactly the entries the stored status has not yet counted.
"""

from __future__ import annotations

import datetime as dt

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest, AccessRequestStatus, RequestPhase
from jitgate.core.clock import format_time
from jitgate.core.durations import format_duration
from jitgate.core.events import Actor, Record, actor_of, approval_record, named, request_record
from jitgate.core.grants import plan_grant
from jitgate.core.policy import grant_duration, may_approve
from jitgate.core.requests.annotations import CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION
from jitgate.core.requests.step import APPROVED, Notice, Step, World, set_condition, to_phase
from jitgate.core.requests.tally import Tally, decisive_index, pending_expired, tally


def _tally(request: AccessRequest, policy: AccessPolicy | None) -> Tally | None:
    requester = request.spec.requester
    if policy is None or requester is None:
        return None
    status = request.status
    return tally(
        status.approvals,
        requester=requester.user,
        required=status.required_approvals or policy.spec.required_approvals,
        allow_self_approval=policy.spec.allow_self_approval,
        is_approver=lambda user, groups: may_approve(policy, user, groups),
        spec_digest=spec_digest(request.spec),
        deadline=status.pending_deadline,
    )


def _approval_records(
    request: AccessRequest,
    policy: AccessPolicy | None,
    result: Tally | None,
    now: dt.datetime,
) -> list[Record]:
    approvals = request.status.approvals
    observed = min(request.status.observed_approvals or 0, len(approvals))
    ignored = {item.index: item.why for item in result.ignored} if result else {}
    decisive = decisive_index(approvals, result) if result else None
    records = []
    for index in range(observed, len(approvals)):
        why = ignored.get(index)
        if result is None:
            why = f"AccessPolicy {request.status.policy} no longer exists"
        elif decisive is not None and index > decisive:
            why = "the request was already decided"
        records.append(
            approval_record(
                request,
                index,
                approvals[index],
                now,
                policy=policy,
                counted=why is None,
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
        context={"cause": reason, "policy": status.policy},
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
    approvals = status.approvals
    policy = world.policy(status.policy)
    deadline = status.pending_deadline
    annotations = request.metadata.annotations
    result = _tally(request, policy)
    records = _approval_records(request, policy, result, now)
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
            "DeniedByApprover",
            f"denied by {result.denied_by}{comment}",
            "request.denied",
            actor_of(denier),
        )
    if result is not None and result.outcome == "Approved" and policy is not None:
        return _approve(request, world, policy, result, records)
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
    if not records:
        return Step(wake_at=deadline)
    required = status.required_approvals or 1
    counted = len(result.approved_by) if result else 0
    message = (
        f"{counted} of {required} approval{'s' if required > 1 else ''}"
        + (f" ({', '.join(result.approved_by)})" if result and result.approved_by else "")
        + (f"; waiting until {format_time(deadline)}" if deadline else "")
    )
    if policy is None:
        message = (
            f"AccessPolicy {status.policy} no longer exists, so no approval can be checked; "
            f"the request expires unanswered"
        )
    return Step(
        records=tuple(records),
        status=AccessRequestStatus(observed_approvals=len(approvals), message=message),
        notices=(Notice("ApprovalRecorded", message),),
        wake_at=deadline,
    )


def _approve(
    request: AccessRequest,
    world: World,
    policy: AccessPolicy,
    result: Tally,
    records: list[Record],
) -> Step:
    now = world.now
    status = request.status
    name = policy.metadata.name or ""
    approvals = status.approvals
    decisive = decisive_index(approvals, result)
    assert decisive is not None  # an Approved tally names its approvers
    ignored = {item.index for item in result.ignored}
    chain = [a for i, a in enumerate(approvals[: decisive + 1]) if i not in ignored]
    duration = grant_duration(request.spec, policy)
    message = (
        f"approved by {', '.join(result.approved_by)} under AccessPolicy {name} "
        f"for {format_duration(duration)}"
    )
    approved = request_record(
        "request.approved",
        request,
        now,
        actor=actor_of(approvals[decisive]),
        reason=message,
        context={"approvedBy": list(result.approved_by), "policy": name, "breakGlass": False},
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
            request, now=now, duration=duration, policy=name, approvals=chain, break_glass=False
        ),
        notices=(Notice("Approved", message),),
        notify="approved",
        approved_after=(now - pending_since) if pending_since else None,
    )
