"""An approver's queue (`kubectl jit list --pending`): the requests I may decide, soonest
deadline first, each with why it is asked and exactly what it would allow.

Pure, given the policies, the caller and the time. Whether I may decide is the policies'
answer (`jitgate.core.policy`): the policy the operator recorded, or for a request it has not
seen yet, the one `resolve_request` finds; the webhook decides again when I approve.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jitgate.cli.kubectl_jit.cluster import Me
from jitgate.cli.kubectl_jit.views import (
    NONE,
    approvals_count,
    describe_action_long,
    human_duration,
)
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.durations import format_duration, parse_duration
from jitgate.core.policy import Namespace, grant_duration, may_approve, resolve_request
from jitgate.core.refusals import Refusal


def governing(
    request: AccessRequest,
    policies: Sequence[AccessPolicy],
    labels: Mapping[str, str] | None,
) -> AccessPolicy | None:
    """The policy governing a request: the one the operator recorded, else the one the
    operator will find (None when no policy accepts it or the namespace is unreadable)."""
    name = request.status.policy
    if name:
        return next((p for p in policies if p.metadata.name == name), None)
    requester = request.spec.requester
    if requester is None or labels is None:
        return None
    namespace = Namespace(request.metadata.namespace or "", labels)
    found = resolve_request(policies, namespace, request.spec, requester.user, requester.groups)
    return None if isinstance(found, Refusal) else found.policy


def may_decide(request: AccessRequest, policy: AccessPolicy, me: Me) -> bool:
    """Whether my approval or denial would count: an approver under the policy, not the
    requester (unless it allows self-approval), and not decided already."""
    requester = request.spec.requester
    if requester is not None and requester.user == me.user and not policy.spec.allow_self_approval:
        return False
    if any(approval.user == me.user for approval in request.status.approvals):
        return False
    return may_approve(policy, me.user, me.groups)


def grant_length(request: AccessRequest, policy: AccessPolicy | None) -> str:
    """How long the grant would last: the duration asked for, else the policy's default,
    never beyond its maximum; said so where the policy decides it."""
    asked = request.spec.duration
    if policy is None:
        return asked or "the policy's default"
    length = format_duration(grant_duration(request.spec, policy))
    if asked is None:
        return f"{length} (the policy's default)"
    capped = parse_duration(asked) > grant_duration(request.spec, policy)
    return f"{length} (capped from {asked})" if capped else length


@dataclass(frozen=True)
class Entry:
    request: AccessRequest
    policy: AccessPolicy | None


def deadline_key(entry: Entry) -> tuple[bool, dt.datetime, str, str]:
    deadline = entry.request.status.pending_deadline
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    meta = entry.request.metadata
    return (deadline is None, deadline or far, meta.namespace or "", meta.name or "")


def queue_header(*, with_namespace: bool) -> list[str]:
    header = ["NAME", "REQUESTER", "ALLOWS", "FOR", "APPROVALS", "DEADLINE", "REASON"]
    return ["NAMESPACE", *header] if with_namespace else header


def queue_row(entry: Entry, now: dt.datetime, *, with_namespace: bool) -> list[str]:
    request = entry.request
    requester = request.spec.requester.user if request.spec.requester else NONE
    deadline = request.status.pending_deadline
    row = [
        request.metadata.name or "",
        requester,
        "; ".join(describe_action_long(action) for action in request.spec.actions),
        grant_length(request, entry.policy),
        approvals_count(request),
        _deadline(deadline, now),
        request.spec.reason,
    ]
    return [request.metadata.namespace or "", *row] if with_namespace else row


def _deadline(deadline: dt.datetime | None, now: dt.datetime) -> str:
    if deadline is None:
        return "-"  # the operator has not seen it yet
    return f"in {human_duration(deadline - now)}" if deadline > now else "now"
