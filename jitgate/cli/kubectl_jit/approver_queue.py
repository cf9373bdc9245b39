"""An approver's queue (`kubectl jit list --pending`): the requests I may decide, soonest
deadline first, each with why it is asked and exactly what it would allow.

Pure, given the policies, the caller and the time. Whether I may decide is the policies'
answer (`jitgate.core.policy.Governing`): the policies the operator recorded, or for a request
it has not seen yet, those `resolve_request` finds; the webhook decides again when I approve.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jitgate.cli.kubectl_jit.cluster import Me
from jitgate.cli.kubectl_jit.views import (
    NONE,
    approvals_needed,
    describe_action_long,
    human_duration,
)
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.durations import format_duration, parse_duration
from jitgate.core.policy import Governing, Namespace, resolve_request
from jitgate.core.refusals import Refusal


def governing(
    request: AccessRequest,
    policies: Sequence[AccessPolicy],
    labels: Mapping[str, str] | None,
) -> Governing | None:
    """The policies governing a request: those the operator recorded, else those the operator
    will find (None when one of them is gone, no policy accepts it or the namespace is
    unreadable)."""
    names = request.status.policy_names
    if names:
        found = [next((p for p in policies if p.metadata.name == name), None) for name in names]
        if any(policy is None for policy in found):
            return None
        return Governing.of(policy for policy in found if policy is not None)
    requester = request.spec.requester
    if requester is None or labels is None:
        return None
    namespace = Namespace(request.metadata.namespace or "", labels)
    resolved = resolve_request(policies, namespace, request.spec, requester.user, requester.groups)
    return None if isinstance(resolved, Refusal) else resolved.governing


def may_decide(request: AccessRequest, governing: Governing, me: Me) -> bool:
    """Whether my approval or denial would count: an approver under one of the policies, not
    the requester (unless every one allows self-approval), and not decided already."""
    requester = request.spec.requester
    if (
        requester is not None
        and requester.user == me.user
        and governing.refusing_self_approval() is not None
    ):
        return False
    if any(approval.user == me.user for approval in request.status.approvals):
        return False
    return bool(governing.approving(me.user, me.groups))


def grant_length(request: AccessRequest, governing: Governing | None) -> str:
    """How long the grant would last: the duration asked for, else the shortest default,
    never beyond any maximum; said so where the policies decide it."""
    asked = request.spec.duration
    if governing is None:
        return asked or "the policy's default"
    granted = governing.grant_duration(request.spec)
    length = format_duration(granted)
    if asked is None:
        return f"{length} (the policy's default)"
    capped = parse_duration(asked) > granted
    return f"{length} (capped from {asked})" if capped else length


@dataclass(frozen=True)
class Entry:
    request: AccessRequest
    governing: Governing | None


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
        grant_length(request, entry.governing),
        approvals_needed(request),
        _deadline(deadline, now),
        request.spec.reason,
    ]
    return [request.metadata.namespace or "", *row] if with_namespace else row


def _deadline(deadline: dt.datetime | None, now: dt.datetime) -> str:
    if deadline is None:
        return "-"  # the operator has not seen it yet
    return f"in {human_duration(deadline - now)}" if deadline > now else "now"
