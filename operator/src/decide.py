"""What happens next to an AccessRequest or its Grant, one transition at a time, without I/O.

`decide()` looks at a request as stored and returns a `Step`: the audit records to write
first, then the grant to issue, the status to patch, the Events to post and the notification
to send. The adapter applies a step and decides again on the result until nothing is left
to do, so each step stays small and a crash between steps resumes where it stopped: every
step's records are derived from the stored status (phase, `observedApprovals`), which moves
only after the records are durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jitgate.operator.grants import plan_grant
from jitgate.operator.records import (
    Record,
    actor_of,
    approval_record,
    grant_record,
    named,
    policy_context,
    raw_request_record,
    request_record,
)
from pydantic import ValidationError

from jitgate.audit.model import Actor
from jitgate.core.api import (
    AccessPolicy,
    AccessRequest,
    AccessRequestSpec,
    AccessRequestStatus,
    Approval,
    Condition,
    Grant,
    ObjectMeta,
)
from jitgate.core.approvals import spec_digest
from jitgate.core.clock import format_time
from jitgate.core.durations import format_duration
from jitgate.core.lifecycle import (
    CANCEL_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKED_BY_ANNOTATION,
    Tally,
    tally,
)
from jitgate.core.policy import (
    Namespace,
    Rejection,
    UnreadablePolicy,
    grant_duration,
    may_approve,
    resolve_request,
)

NotifyKind = Literal["created", "approved", "denied", "expired"]
Ended = Literal["Expired", "Revoked"]
Status = dict[str, Any]

# Condition types on AccessRequests: `Approved` is Unknown while Pending, `Granted` is True
# while the grant is live, `ReviewRequired` flags break-glass grants.
APPROVED = "Approved"
GRANTED = "Granted"
REVIEW_REQUIRED = "ReviewRequired"


class Unreadable(ValueError):
    """A stored object the operator cannot interpret (its own status fields are malformed)."""


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event on the object."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class RevokeGrant:
    grant: str
    by: str | None
    reason: str


@dataclass(frozen=True)
class Step:
    records: tuple[Record, ...] = ()
    status: Status = field(default_factory=dict)  # merge patch of .status
    grant: Grant | None = None  # to issue; its record and status.grant are added on issue
    revoke: RevokeGrant | None = None
    notices: tuple[Notice, ...] = ()
    notify: NotifyKind | None = None
    delete: bool = False  # retention is over
    wake_at: dt.datetime | None = None  # look again then, even if nothing changes
    approved_after: dt.timedelta | None = None

    @property
    def acts(self) -> bool:
        return bool(self.records or self.status or self.grant or self.revoke or self.delete)


@dataclass(frozen=True)
class World:
    """Everything besides the request that a decision depends on."""

    now: dt.datetime
    policies: Sequence[AccessPolicy]
    namespace: Namespace
    retention: dt.timedelta
    # AccessPolicies in the cluster that do not validate: what they protect is unknown.
    unreadable: Sequence[UnreadablePolicy] = ()

    def broken_policy(self) -> UnreadablePolicy | None:
        """An invalid policy that might govern this namespace, so nothing here is decided."""
        return next((p for p in self.unreadable if p.may_cover(self.namespace)), None)


# ----------------------------------------------------------------------------- reading

_STATUS_FIELDS = frozenset(
    (info.alias or name) for name, info in AccessRequestStatus.model_fields.items()
)


def _approval(entry: Any) -> Approval:
    try:
        return Approval.model_validate(entry)
    except ValidationError:
        # A malformed entry (written past the webhook) never counts, but keeps its index.
        return Approval(decision="Approve", comment="malformed approval entry")


def read_status(raw: Mapping[str, Any] | None) -> AccessRequestStatus:
    status = {k: v for k, v in (raw or {}).items() if k in _STATUS_FIELDS}
    approvals = status.pop("approvals", None) or []
    try:
        parsed = AccessRequestStatus.model_validate(status)
    except ValidationError as error:
        raise Unreadable(f"the status is malformed: {_first_error(error)}") from error
    return parsed.model_copy(update={"approvals": [_approval(e) for e in approvals]})


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def read_request(raw: Mapping[str, Any]) -> AccessRequest | tuple[ObjectMeta, str]:
    """The request, or its metadata and why its spec is invalid."""
    meta = ObjectMeta.model_validate(raw.get("metadata") or {})
    status = read_status(raw.get("status"))
    try:
        spec = AccessRequestSpec.model_validate(raw.get("spec") or {})
    except ValidationError as error:
        return meta, f"spec.{_first_error(error)}"
    return AccessRequest(metadata=meta, spec=spec, status=status)


# ------------------------------------------------------------------------ conditions


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[Condition]:
    """Replace or add one condition, keeping its transition time if its status is unchanged."""
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_, status=status, reason=reason, message=message, last_transition_time=since
    )
    return [new if c.type == type_ else c for c in conditions] if old else [*conditions, new]


def _wire(conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    return [condition.to_wire() for condition in conditions]


def finished_at(request: AccessRequest) -> dt.datetime | None:
    # A later review is not the end of the request, so it does not restart the retention.
    times = [
        c.last_transition_time
        for c in request.status.conditions
        if c.last_transition_time and c.type != REVIEW_REQUIRED
    ]
    return max(times, default=None) or request.metadata.creation_timestamp


# ---------------------------------------------------------------------------- helpers


def _find(policies: Sequence[AccessPolicy], name: str | None) -> AccessPolicy | None:
    return next((p for p in policies if name and p.metadata.name == name), None)


def _requester_actor(request: AccessRequest) -> Actor | None:
    return actor_of(request.spec.requester)


# ---------------------------------------------------------------------------- decide


def decide(request: AccessRequest, world: World) -> Step:
    if request.metadata.deletion_timestamp is not None:
        return Step()  # the deletion handler revokes; nothing else may start now
    match request.status.phase:
        case None:
            return _admit(request, world)
        case "Pending":
            return _pending(request, world)
        case "Approved":
            return _approved(request, world)
        case _:
            return _finished(request, world)


def decide_invalid(meta: ObjectMeta, problem: str, raw: Mapping[str, Any], world: World) -> Step:
    """A request whose spec does not validate (the API server's schema was bypassed)."""
    if (raw.get("status") or {}).get("phase"):
        return Step()
    message = f"the request is invalid ({problem}), so it is denied"
    record = raw_request_record(
        "request.denied",
        meta,
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
        status={"phase": "Denied", "message": message, "conditions": [condition.to_wire()]},
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
    created: bool,
    policy: AccessPolicy | None = None,
) -> Step:
    now = world.now
    records = []
    if created:
        records.append(
            request_record(
                "request.created",
                request,
                now,
                actor=_requester_actor(request),
                reason=request.spec.reason,
                context={"spec": request.spec.to_wire(), "policy": policy_context(policy)},
            )
        )
    records.append(
        request_record(
            "request.denied",
            request,
            now,
            reason=message,
            context={"cause": reason, "policy": policy.metadata.name if policy else None},
        )
    )
    status: Status = {
        "phase": "Denied",
        "message": message,
        "observedApprovals": len(request.status.approvals),
        "conditions": _wire(
            set_condition(request.status.conditions, APPROVED, "False", reason, message, now)
        ),
    }
    if policy is not None:
        status["policy"] = policy.metadata.name
    return Step(
        records=tuple(records),
        status=status,
        notices=(Notice("Denied", message, warning=True),),
        notify="denied",
        wake_at=now + world.retention,
    )


def _admit(request: AccessRequest, world: World) -> Step:
    now = world.now
    requester = request.spec.requester
    if requester is None:
        return _deny(
            request,
            world,
            "RequesterNotStamped",
            "the request has no stamped requester, so the jitgate admission webhook did not "
            "admit it; it is denied because its author cannot be trusted",
            created=True,
        )
    broken = world.broken_policy()
    if broken is not None:
        return _deny(
            request,
            world,
            "PolicyInvalid",
            f"AccessPolicy {broken.name} is invalid ({broken.error}) and may govern namespace "
            f"{world.namespace.name}; no request there is decided until an admin fixes it",
            created=True,
        )
    resolved = resolve_request(
        world.policies, world.namespace, request.spec, requester.user, requester.groups
    )
    if isinstance(resolved, Rejection):
        return _deny(
            request, world, resolved.reason, resolved.message, created=True, policy=resolved.policy
        )
    policy = resolved.policy
    name = policy.metadata.name or ""
    created = request_record(
        "request.created",
        request,
        now,
        actor=actor_of(requester),
        reason=request.spec.reason,
        context={
            "spec": request.spec.to_wire(),
            "policy": policy_context(policy),
            "requiredApprovals": resolved.required_approvals,
            "duration": format_duration(resolved.duration),
            "breakGlass": resolved.break_glass,
        },
    )
    if resolved.break_glass:
        message = (
            f"break-glass: approved without review under AccessPolicy {name} "
            f"for {format_duration(resolved.duration)}; flagged for review"
        )
        approved = request_record(
            "request.approved",
            request,
            now,
            actor=actor_of(requester),
            reason=request.spec.reason,
            context={"breakGlass": True, "policy": name, "approvedBy": []},
        )
        conditions = set_condition(
            request.status.conditions, APPROVED, "True", "BreakGlass", message, now
        )
        conditions = set_condition(
            conditions,
            REVIEW_REQUIRED,
            "True",
            "BreakGlass",
            f"{requester.user} activated an emergency grant without approval: "
            f"{request.spec.reason}",
            now,
        )
        return Step(
            records=(created, approved),
            status={
                "phase": "Approved",
                "policy": name,
                "requiredApprovals": resolved.required_approvals,
                "observedApprovals": len(request.status.approvals),
                "message": message,
                "conditions": _wire(conditions),
            },
            grant=plan_grant(
                request,
                now=now,
                duration=resolved.duration,
                policy=name,
                approvals=(),
                break_glass=True,
            ),
            notices=(Notice("BreakGlass", message, warning=True),),
            notify="approved",
            approved_after=dt.timedelta(0),
        )
    deadline = now + resolved.pending_timeout
    required = resolved.required_approvals
    message = (
        f"waiting for {required} approval{'s' if required > 1 else ''} under AccessPolicy "
        f"{name} until {format_time(deadline)}"
    )
    return Step(
        records=(created,),
        status={
            "phase": "Pending",
            "policy": name,
            "requiredApprovals": required,
            "pendingDeadline": format_time(deadline),
            # Approvers append with a JSON patch to /status/approvals/-, which needs the list.
            **({} if request.status.approvals else {"approvals": []}),
            "observedApprovals": 0,
            "message": message,
            "conditions": _wire(
                set_condition(
                    request.status.conditions,
                    APPROVED,
                    "Unknown",
                    "AwaitingApproval",
                    message,
                    now,
                )
            ),
        },
        notices=(Notice("Pending", message),),
        notify="created",
        wake_at=deadline,
    )


def _decisive_index(approvals: Sequence[Approval], result: Tally) -> int | None:
    user = result.denied_by if result.outcome == "Denied" else None
    if result.outcome == "Approved":
        user = result.approved_by[-1]
    if user is None:
        return None
    ignored = {item.index for item in result.ignored}
    return next(
        i for i, a in enumerate(approvals) if a.user == user and i not in ignored
    )  # pragma: no branch - tally counted it, so it is there


def _approval_records(
    request: AccessRequest,
    policy: AccessPolicy | None,
    result: Tally | None,
    now: dt.datetime,
) -> list[Record]:
    approvals = request.status.approvals
    observed = min(request.status.observed_approvals or 0, len(approvals))
    ignored = {item.index: item.why for item in result.ignored} if result else {}
    decisive = _decisive_index(approvals, result) if result else None
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


def _pending(request: AccessRequest, world: World) -> Step:
    now = world.now
    status = request.status
    approvals = status.approvals
    policy = _find(world.policies, status.policy)
    requester = request.spec.requester
    deadline = status.pending_deadline
    annotations = request.metadata.annotations
    result: Tally | None = None
    if policy is not None and requester is not None:
        result = tally(
            approvals,
            requester=requester.user,
            required=status.required_approvals or policy.spec.required_approvals,
            allow_self_approval=policy.spec.allow_self_approval,
            is_approver=lambda user, groups: may_approve(policy, user, groups),
            spec_digest=spec_digest(request.spec),
            deadline=deadline,
        )
    records = _approval_records(request, policy, result, now)
    observed = {"observedApprovals": len(approvals)}

    def finish(phase: str, reason: str, message: str, kind: str, actor: Actor | None) -> Step:
        records.append(
            request_record(
                kind,
                request,
                now,
                actor=actor,
                reason=message,
                context={"cause": reason, "policy": status.policy},
            )
        )
        conditions = set_condition(status.conditions, APPROVED, "False", reason, message, now)
        return Step(
            records=tuple(records),
            status={
                "phase": phase,
                "message": message,
                **observed,
                "conditions": _wire(conditions),
            },
            notices=(Notice(phase, message, warning=phase != "Cancelled"),),
            notify="denied" if phase == "Denied" else "expired" if phase == "Expired" else None,
            wake_at=now + world.retention,
        )

    if CANCEL_ANNOTATION in annotations and annotations.get(CANCELLED_BY_ANNOTATION):
        by = annotations[CANCELLED_BY_ANNOTATION]
        return finish(
            "Cancelled",
            "Cancelled",
            f"cancelled by {by}",
            "request.cancelled",
            named(by),
        )
    if result is not None and result.outcome == "Denied":
        denier = approvals[_decisive_index(approvals, result) or 0]
        comment = f": {denier.comment}" if denier.comment else ""
        return finish(
            "Denied",
            "DeniedByApprover",
            f"denied by {result.denied_by}{comment}",
            "request.denied",
            actor_of(denier),
        )
    if result is not None and result.outcome == "Approved" and policy is not None:
        return _approve(request, world, policy, result, records)
    if deadline is not None and now >= deadline:
        return finish(
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
        status={**observed, "message": message},
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
    decisive = _decisive_index(approvals, result)
    assert decisive is not None  # an Approved tally names its approvers
    ignored = {item.index for item in result.ignored}
    chain = [a for i, a in enumerate(approvals[: decisive + 1]) if i not in ignored]
    duration = grant_duration(request.spec, policy)
    message = (
        f"approved by {', '.join(result.approved_by)} under AccessPolicy {name} "
        f"for {format_duration(duration)}"
    )
    records.append(
        request_record(
            "request.approved",
            request,
            now,
            actor=actor_of(approvals[decisive]),
            reason=message,
            context={"approvedBy": list(result.approved_by), "policy": name, "breakGlass": False},
        )
    )
    pending_since = next(
        (c.last_transition_time for c in status.conditions if c.type == APPROVED), None
    )
    conditions = set_condition(status.conditions, APPROVED, "True", "Approved", message, now)
    return Step(
        records=tuple(records),
        status={
            "phase": "Approved",
            "observedApprovals": len(approvals),
            "message": message,
            "conditions": _wire(conditions),
        },
        grant=plan_grant(
            request,
            now=now,
            duration=duration,
            policy=name,
            approvals=chain,
            break_glass=False,
        ),
        notices=(Notice("Approved", message),),
        notify="approved",
        approved_after=(now - pending_since) if pending_since else None,
    )


def _approved(request: AccessRequest, world: World) -> Step:
    status = request.status
    annotations = request.metadata.annotations
    if status.grant is None:
        # Approved in a step whose grant was not issued (a crash in between): issue it now.
        policy = _find(world.policies, status.policy)
        duration = grant_duration(request.spec, policy) if policy else dt.timedelta(minutes=15)
        return Step(
            grant=plan_grant(
                request,
                now=world.now,
                duration=duration,
                policy=status.policy or "",
                approvals=[a for a in status.approvals if a.decision == "Approve"],
                break_glass=request.spec.break_glass,
            )
        )
    if REVOKE_ANNOTATION in annotations and annotations.get(REVOKED_BY_ANNOTATION):
        by = annotations[REVOKED_BY_ANNOTATION]
        return Step(revoke=RevokeGrant(status.grant.name, by, f"revoked by {by}"))
    return _review(request, world) or Step()


def _review(request: AccessRequest, world: World) -> Step | None:
    """A break-glass grant an approver reviewed (the webhook stamped who): record it once,
    then mark `ReviewRequired` False, which says it was recorded."""
    status, annotations = request.status, request.metadata.annotations
    reviewer = annotations.get(REVIEWED_BY_ANNOTATION)
    requester = request.spec.requester
    flag = next((c for c in status.conditions if c.type == REVIEW_REQUIRED), None)
    if (
        not request.spec.break_glass
        or status.phase not in REVIEWABLE_PHASES
        or status.grant is None
        or annotations.get(REVIEW_ANNOTATION) != "true"
        or not reviewer
        or (requester is not None and reviewer == requester.user)  # the webhook refuses it
        or (flag is not None and flag.status == "False")
    ):
        return None
    comment = annotations.get(REVIEW_COMMENT_ANNOTATION) or None
    grant = status.grant.name
    message = f"reviewed by {reviewer}" + (f": {comment}" if comment else "")
    record = request_record(
        "grant.reviewed",
        request,
        world.now,
        actor=named(reviewer),
        reason=comment,
        grant=grant,
        context={"policy": status.policy, "breakGlass": True, "phase": status.phase},
    )
    conditions = set_condition(
        status.conditions, REVIEW_REQUIRED, "False", "Reviewed", message, world.now
    )
    return Step(
        records=(record,),
        status={"conditions": _wire(conditions)},
        notices=(Notice("Reviewed", f"break-glass grant {grant} {message}"),),
    )


def _finished(request: AccessRequest, world: World) -> Step:
    reviewed = _review(request, world)
    if reviewed is not None:
        return reviewed
    finished = finished_at(request)
    if finished is None:
        return Step()
    due = finished + world.retention
    if world.now >= due:
        return Step(delete=True)
    return Step(wake_at=due)


def issued_status(step_status: Status, grant: Grant, now: dt.datetime) -> Status:
    """The status patch of an approving step, completed with the grant actually issued."""
    current = [Condition.model_validate(c) for c in step_status.get("conditions", [])]
    message = f"grant {grant.metadata.name} is live until {format_time(grant.spec.expires_at)}"
    current = set_condition(current, GRANTED, "True", "GrantIssued", message, now)
    return {
        **step_status,
        "grant": {"name": grant.metadata.name, "expiresAt": format_time(grant.spec.expires_at)},
        "conditions": _wire(current),
    }


# ----------------------------------------------------------------------- grant endings


@dataclass(frozen=True)
class Ending:
    """How a grant ends: records first, then the grant's status, then the request's."""

    records: tuple[Record, ...]
    grant_status: Status | None
    request_status: Status | None
    notices: tuple[Notice, ...]
    notify: NotifyKind | None
    lag: dt.timedelta | None


def ending_kind(grant: Grant, now: dt.datetime) -> Ended:
    """A grant that disappears after its expiry expired; before it, it was revoked."""
    return "Expired" if now >= grant.spec.expires_at else "Revoked"


def end_grant(
    grant: Grant,
    request: AccessRequest | None,
    *,
    now: dt.datetime,
    kind: Ended,
    actor: Actor | None,
    reason: str,
) -> Ending:
    already = grant.status.phase in ("Expired", "Revoked")
    owns = (
        request is not None
        and request.status.phase == "Approved"
        and request.status.grant is not None
        and request.status.grant.name == grant.metadata.name
        and request.metadata.deletion_timestamp is None
    )
    lag = now - grant.spec.expires_at if kind == "Expired" else None
    records: list[Record] = []
    if not already:
        extra = {"lagSeconds": round(lag.total_seconds(), 3)} if lag is not None else None
        kind_name = "grant.expired" if kind == "Expired" else "grant.revoked"
        records.append(grant_record(kind_name, grant, now, actor=actor, reason=reason, extra=extra))
        if kind == "Expired" and owns and request is not None:
            records.append(
                request_record(
                    "request.expired",
                    request,
                    now,
                    reason=reason,
                    grant=grant.metadata.name,
                    context={"cause": "GrantExpired", "policy": request.status.policy},
                )
            )
    request_status: Status | None = None
    if owns and request is not None:
        message = f"grant {grant.metadata.name} {reason}"
        cause = "GrantExpired" if kind == "Expired" else "Revoked"
        request_status = {
            "phase": kind,
            "message": message,
            "conditions": _wire(
                set_condition(request.status.conditions, GRANTED, "False", cause, message, now)
            ),
        }
    return Ending(
        records=tuple(records),
        grant_status=None if already else {"phase": kind},
        request_status=request_status,
        notices=(Notice(kind, f"grant {grant.metadata.name} {reason}", warning=kind == "Revoked"),)
        if not already
        else (),
        notify="expired" if kind == "Expired" and owns and not already else None,
        lag=lag if not already else None,
    )
