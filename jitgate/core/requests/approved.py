"""An Approved request: its grant issued (again, after a crash), revoked on request, and a
break-glass grant's review recorded once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from jitgate.core import extensions
from jitgate.core.api import AccessRequest, AccessRequestStatus, Grant, GrantReference
from jitgate.core.clock import format_time, whole_seconds
from jitgate.core.events import governing_names, named, request_record
from jitgate.core.grants import plan_grant
from jitgate.core.requests.annotations import (
    REVIEW_ANNOTATION,
    REVIEW_COMMENT_ANNOTATION,
    REVIEWABLE_PHASES,
    REVIEWED_BY_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKE_REASON_ANNOTATION,
    REVOKED_BY_ANNOTATION,
)
from jitgate.core.requests.step import (
    GRANTED,
    REVIEW_REQUIRED,
    Notice,
    RevokeGrant,
    Step,
    World,
    set_condition,
    to_phase,
)

# The grant length when a policy that approved a request is gone before its grant was issued.
_FALLBACK_DURATION = dt.timedelta(minutes=15)


def approved(request: AccessRequest, world: World) -> Step:
    status = request.status
    annotations = request.metadata.annotations
    if status.grant is None:
        # Approved in a step whose grant was not issued (a crash in between): issue it now.
        governing = world.governing(status.policy_names)
        duration = governing.grant_duration(request.spec) if governing else _FALLBACK_DURATION
        extended = world.extended
        extension = (
            extensions.window(request.spec, extended.grant, governing)
            if request.spec.extends and extended and extended.grant and governing
            else None
        )
        return Step(
            grant=plan_grant(
                request,
                now=world.now,
                duration=duration,
                policies=status.policy_names,
                approvals=[a for a in status.approvals if a.decision == "Approve"],
                break_glass=request.spec.break_glass,
                extension=extension,
            )
        )
    if REVOKE_ANNOTATION in annotations and annotations.get(REVOKED_BY_ANNOTATION):
        by = annotations[REVOKED_BY_ANNOTATION]
        why = annotations.get(REVOKE_REASON_ANNOTATION, "").strip()
        reason = f"revoked by {by}" + (f": {why}" if why else "")
        gone = to_phase(status.phase, "Revoked", message=f"grant {status.grant.name} {reason}")
        return Step(revoke=RevokeGrant(status.grant.name, by, reason, gone))
    return review(request, world) or Step()


def review(request: AccessRequest, world: World) -> Step | None:
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
        context={**governing_names(status.policy_names), "breakGlass": True, "phase": status.phase},
    )
    conditions = set_condition(
        status.conditions, REVIEW_REQUIRED, "False", "Reviewed", message, world.now
    )
    return Step(
        records=(record,),
        status=AccessRequestStatus(conditions=conditions),
        notices=(Notice("Reviewed", f"break-glass grant {grant} {message}"),),
    )


@dataclass(frozen=True)
class Issued:
    """A step's status and Events, completed with the grant actually issued."""

    status: AccessRequestStatus
    notices: tuple[Notice, ...]


def issued(request: AccessRequest, step: Step, grant: Grant, now: dt.datetime) -> Issued:
    status = step.status or AccessRequestStatus()
    conditions = status.conditions if "conditions" in status.model_fields_set else None
    live = f"grant {grant.metadata.name} is live until {format_time(grant.spec.expires_at)}"
    if grant.spec.not_before > now:
        live = (
            f"grant {grant.metadata.name} is live from {format_time(grant.spec.not_before)} "
            f"until {format_time(grant.spec.expires_at)}"
        )
    granted = set_condition(
        request.status.conditions if conditions is None else conditions,
        GRANTED,
        "True",
        "GrantIssued",
        live,
        now,
    )
    reference = GrantReference(
        name=grant.metadata.name or "", expires_at=whole_seconds(grant.spec.expires_at)
    )
    notices = tuple(Notice(n.reason, f"{n.message}; {live}", n.warning) for n in step.notices) or (
        Notice("GrantIssued", live),
    )
    return Issued(status.model_copy(update={"grant": reference, "conditions": granted}), notices)
