"""A new request (no phase yet): admitted by policy to Pending, Approved (break-glass) or
Denied; a request whose spec does not validate is Denied."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from jitgate.core import extensions
from jitgate.core.api import (
    AccessPolicy,
    AccessRequest,
    AccessRequestStatus,
    Condition,
    GoverningPolicy,
    Subjects,
)
from jitgate.core.clock import format_time, whole_seconds
from jitgate.core.durations import format_duration
from jitgate.core.events import (
    Record,
    actor_of,
    governing_context,
    governing_names,
    policy_context,
    request_record,
    unread_request_record,
)
from jitgate.core.extensions import Extended
from jitgate.core.grants import plan_grant
from jitgate.core.policy import Governing, Window, resolve_request
from jitgate.core.refusals import Refusal
from jitgate.core.requests import auto
from jitgate.core.requests import windows as scheduled
from jitgate.core.requests.after_denial import describe_hold, hold_for
from jitgate.core.requests.pending import pending
from jitgate.core.requests.step import (
    APPROVED,
    REVIEW_REQUIRED,
    Notice,
    Step,
    World,
    set_condition,
    to_phase,
)
from jitgate.core.wire import Unreadable


def deny_invalid(request: Unreadable, raw: Mapping[str, Any], world: World) -> Step:
    """A request whose spec does not validate (the API server's schema was bypassed)."""
    if (raw.get("status") or {}).get("phase"):
        return Step()
    message = f"the request is invalid ({request.problem}), so it is denied"
    record = unread_request_record(
        "request.denied",
        request,
        world.now,
        reason=message,
        context={"cause": "InvalidRequest", "spec": raw.get("spec")},
    )
    condition = Condition(
        type=APPROVED,
        status="False",
        reason="InvalidRequest",
        message=message,
        last_transition_time=world.now,
    )
    return Step(
        records=(record,),
        status=to_phase(None, "Denied", message=message, conditions=[condition]),
        notices=(Notice("Denied", message, warning=True),),
        notify="denied",
        wake_at=world.now + world.retention,
    )


def _deny(
    request: AccessRequest,
    world: World,
    reason: str,
    message: str,
    *,
    policy: AccessPolicy | None = None,
) -> Step:
    now = world.now
    created = request_record(
        "request.created",
        request,
        now,
        actor=actor_of(request.spec.requester),
        reason=request.spec.reason,
        context={"spec": request.spec.to_wire(), "policy": policy_context(policy)},
    )
    denied = request_record(
        "request.denied",
        request,
        now,
        reason=message,
        context={"cause": reason, "policy": policy.metadata.name if policy else None},
    )
    status = to_phase(
        request.status.phase,
        "Denied",
        message=message,
        observed_approvals=len(request.status.approvals),
        conditions=set_condition(
            request.status.conditions, APPROVED, "False", reason, message, now
        ),
        **({"policy": policy.metadata.name} if policy is not None else {}),
    )
    return Step(
        records=(created, denied),
        status=status,
        notices=(Notice("Denied", message, warning=True),),
        notify="denied",
        wake_at=now + world.retention,
    )


def admit(request: AccessRequest, world: World) -> Step:
    now = world.now
    requester = request.spec.requester
    if requester is None:
        return _deny(
            request,
            world,
            "RequesterNotStamped",
            "the request has no stamped requester, so the jitgate admission webhook did not "
            "admit it; it is denied because its author cannot be trusted",
        )
    broken = world.broken_policy()
    if broken is not None:
        refusal = broken.refusing_requests_in(world.namespace)
        return _deny(request, world, refusal.reason, refusal.message)
    resolved = resolve_request(
        world.policies, world.namespace, request.spec, requester.user, requester.groups
    )
    if isinstance(resolved, Refusal):
        return _deny(request, world, resolved.reason, resolved.message, policy=resolved.policy)
    governing = resolved.governing
    closed = None if resolved.break_glass else governing.closed_window(now)
    if closed is not None:
        message = f"{closed.closed_message()}; ask again then"
        return _deny(request, world, "OutsideWindow", message, policy=closed.policy)
    extension = request.spec.extends
    if extension is not None:
        extended = world.extended or Extended(extension.name, None, None)
        refused = extensions.refusal(request.spec, requester.user, extended, governing, now)
        if refused is not None:
            return _deny(request, world, refused.reason, refused.message)
    required = required_counts(governing, extension=extension is not None)
    found = auto.evaluate(request, world, governing, resolved.duration, ())
    created = request_record(
        "request.created",
        request,
        now,
        actor=actor_of(requester),
        reason=request.spec.reason,
        context={
            "spec": request.spec.to_wire(),
            **governing_context(governing.policies),
            "requiredApprovals": max(required),
            "duration": format_duration(resolved.duration),
            "breakGlass": resolved.break_glass,
            **({"autoApproveErrors": list(found.errors)} if found.errors else {}),
        },
    )
    if resolved.break_glass:
        return _break_glass(request, world, created, governing, resolved.duration)
    # A scheduled request may wait for approval until its start plus the timeout; an
    # extension no longer than the grant it extends is live.
    deadline = max(now, request.spec.start_at or now) + resolved.pending_timeout
    if extension is not None and world.extended and world.extended.grant:
        deadline = min(deadline, world.extended.grant.expires_at)
    windows = scheduled.by_name(governing, now)
    hold = hold_for(request, governing, world.denials, now)
    wanted = _wanted(governing, windows, required) + (
        f"; and {describe_hold(hold)}" if hold else ""
    )
    message = f"waiting for {wanted} until {format_time(deadline)}"
    conditions = set_condition(
        request.status.conditions, APPROVED, "Unknown", "AwaitingApproval", message, now
    )
    conditions = auto.condition(conditions, found, now) or conditions
    look_again = [t for t in (scheduled.wake_at(windows, deadline), found.look_again) if t]
    step = Step(
        records=(created, *found.records),
        status=to_phase(
            request.status.phase,
            "Pending",
            **governing_status(governing, required),
            pending_deadline=whole_seconds(deadline),
            # Approvers append with a JSON patch to /status/approvals/-, which needs the list.
            **({} if request.status.approvals else {"approvals": []}),
            observed_approvals=0,
            **({"after_denial": hold} if hold else {}),
            message=message,
            conditions=conditions,
            **({"auto_approvals": list(found.approvals)} if found.approvals else {}),
        ),
        notices=(Notice("Pending", message),),
        notify="created",
        wake_at=min(look_again, default=None),
    )
    return _approved_by_rules(request, world, step) if found.approvals else step


def _approved_by_rules(request: AccessRequest, world: World, step: Step) -> Step:
    """A new request whose rules approved it: straight to Approved when nobody else must
    approve (the Pending step is what `pending` then decides from), else Pending."""
    assert step.status is not None  # the Pending step above
    then = pending(request.model_copy(update={"status": step.status}), world)
    if then.status is None or then.status.phase != "Approved":
        return step
    merged = AccessRequestStatus.model_validate(
        {**step.status.to_patch(), **then.status.to_patch()}
    )
    return replace(then, records=(*step.records, *then.records), status=merged)


def required_counts(governing: Governing, *, extension: bool = False) -> tuple[int, ...]:
    """The approvals each governing policy needs, in their order (for an extension, its
    `extensions.requiredApprovals` where it sets one)."""
    return tuple(
        governing.extension_approvals(p) if extension else p.spec.required_approvals
        for p in governing.policies
    )


def governing_status(
    governing: Governing, required: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """The status fields naming the governing policies and the approvals each needs
    (api.AccessRequestStatus says why `policy` is set only when exactly one governs);
    `requiredApprovals` shows the most any one of them needs."""
    names = governing.names
    counts = required or required_counts(governing)
    return {
        **({"policy": names[0]} if len(names) == 1 else {}),
        "policies": [
            GoverningPolicy(name=name, required_approvals=count)
            for name, count in zip(names, counts, strict=True)
        ],
        "required_approvals": max(counts),
    }


def _wanted(governing: Governing, windows: Mapping[str, Window], required: tuple[int, ...]) -> str:
    """`1 approval under AccessPolicy production`, or one clause per policy (`required`: each
    one's count); a policy whose window is closed says so, with the approvals it needs
    outside it."""
    return "; ".join(
        f"{n} approval{'s' if n > 1 else ''} under AccessPolicy {name}"
        + scheduled.outside_note(windows, name)
        for p, base in zip(governing.policies, required, strict=True)
        for name in (p.metadata.name or "",)
        for n in (scheduled.required_now(windows, name, base),)
    )


def _break_glass(
    request: AccessRequest,
    world: World,
    created: Record,
    governing: Governing,
    duration: dt.timedelta,
) -> Step:
    """Approved at once without review, and flagged for review."""
    now, requester = world.now, request.spec.requester
    assert requester is not None  # admit() denies an unstamped request first
    message = (
        f"break-glass: approved without review under {governing.describe()} "
        f"for {format_duration(duration)}; flagged for review"
    )
    approved = request_record(
        "request.approved",
        request,
        now,
        actor=actor_of(requester),
        reason=request.spec.reason,
        context={
            "breakGlass": True,
            **governing_names(governing.names),
            "approvedBy": [],
        },
    )
    conditions = set_condition(
        request.status.conditions, APPROVED, "True", "BreakGlass", message, now
    )
    conditions = set_condition(
        conditions,
        REVIEW_REQUIRED,
        "True",
        "BreakGlass",
        f"{requester.user} activated an emergency grant without approval: {request.spec.reason}",
        now,
    )
    return Step(
        records=(created, approved),
        status=to_phase(
            request.status.phase,
            "Approved",
            **governing_status(governing),
            observed_approvals=len(request.status.approvals),
            message=message,
            conditions=conditions,
        ),
        grant=plan_grant(
            request,
            now=now,
            duration=duration,
            policies=governing.names,
            approvals=(),
            break_glass=True,
        ),
        notices=(Notice("BreakGlass", message, warning=True),),
        notify="approved",
        # Loud: every approver of every governing policy hears of it at once, on every channel.
        alert=Subjects(
            users=sorted({u for p in governing.policies for u in p.spec.approvers.users}),
            groups=sorted({g for p in governing.policies for g in p.spec.approvers.groups}),
        ),
        approved_after=dt.timedelta(0),
    )
