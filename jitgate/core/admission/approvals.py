"""Status writes to an AccessRequest: approvers may append one decision, nothing else.

An approval is bound to the spec it decides on (`spec_digest`), made as the authenticated
user with their real groups, once per approver, while the request is Pending and before its
pending deadline, by someone at least one governing policy names as an approver (a
requester's own approval only where every governing policy allows self-approval).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from jitgate.core.admission.writes import Identity
from jitgate.core.api import AccessRequestSpec, Approval
from jitgate.core.canonical import digest
from jitgate.core.clock import parse_time
from jitgate.core.policy import Governing
from jitgate.core.refusals import Refusal

M = TypeVar("M", bound=BaseModel)


def spec_digest(spec: AccessRequestSpec) -> str:
    """The digest an approver's decision is bound to: the spec as stored, normalised."""
    return digest(spec)


def strict(model: type[M], value: Any) -> M:
    """`value` as `model` without coercion, as the client typed it."""
    # Via JSON, so that strict mode still reads timestamps from their RFC 3339 strings.
    return model.model_validate_json(json.dumps(value), strict=True)


def check_approval_append(
    *,
    phase: str | None,
    old_approvals: Sequence[Approval],
    new_approvals: Sequence[Approval],
    requester: str,
    who: Identity,
    governing: Governing | None,
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
    if entry.via != who.via:
        return "an approval's via is stamped by jitgate from the authenticated caller, never typed"
    if entry.spec_digest != digest_of_spec:
        return "the approval does not match the request's current spec"
    if any(existing.user == who.user for existing in old_approvals):
        return f"{who.user} has already decided on this request"
    if governing is None:
        return "the policies governing this request are unknown, so no approval can be checked"
    refusing = governing.refusing_self_approval()
    if who.user == requester and refusing is not None:
        return (
            f"{who.user} requested this access and cannot approve it "
            f"(AccessPolicy {refusing.metadata.name} does not allow self-approval)"
        )
    if not governing.approving(who.user, who.groups):
        several = "any of " if len(governing.policies) > 1 else ""
        return f"{who.user} is not an approver under {several}{governing.describe()}"
    return None


def _parse_approvals(values: Any) -> list[Approval] | Refusal:
    if values is None:
        return []
    try:
        if not isinstance(values, list):
            raise TypeError
        return [strict(Approval, value) for value in values]
    except (TypeError, ValidationError):
        return Refusal(
            "status.approvals must be a list of approvals "
            '(e.g. {"decision": "Approve", "comment": "ok"})',
            "Invalid",
        )


def check_status(
    old: dict[str, Any],
    new: dict[str, Any],
    who: Identity,
    requester: str,
    spec: AccessRequestSpec,
    governing: Callable[[], Governing | None],
    now: dt.datetime,
) -> Refusal | None:
    """Why this change of a request's status by someone other than the operator is refused."""
    without = {key: value for key, value in new.items() if key != "approvals"}
    if without != {key: value for key, value in old.items() if key != "approvals"}:
        return Refusal(
            "only the jitgate operator may change an AccessRequest's status; "
            "approvers may only append one entry to status.approvals",
            "StatusReadOnly",
        )
    old_approvals = _parse_approvals(old.get("approvals"))
    new_approvals = _parse_approvals(new.get("approvals"))
    if isinstance(old_approvals, Refusal):
        return old_approvals
    if isinstance(new_approvals, Refusal):
        return new_approvals
    why = check_approval_append(
        phase=old.get("phase") if isinstance(old.get("phase"), str) else None,
        old_approvals=old_approvals,
        new_approvals=new_approvals,
        requester=requester,
        who=who,
        governing=governing() if len(new_approvals) > len(old_approvals) else None,
        digest_of_spec=spec_digest(spec),
    )
    appended = len(new_approvals) > len(old_approvals)
    if why is None and appended and _past(old.get("pendingDeadline"), now):
        why = "the request's pending deadline has passed, so it can no longer be decided"
    # Groups decide eligibility when the operator re-counts, so they must be real too.
    if why is None and appended and set(new_approvals[-1].groups) != set(who.groups):
        why = f"an approval must carry the authenticated groups of {who.user}"
    return Refusal(why, "ApprovalRefused") if why else None


def _past(deadline: Any, now: dt.datetime) -> bool:
    if not isinstance(deadline, str):
        return False
    try:
        return now >= parse_time(deadline)
    except ValueError:
        return False
