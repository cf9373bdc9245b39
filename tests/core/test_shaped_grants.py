"""One-time / N-use grants, scheduled starts and extensions, without I/O: what admission
refuses, what the operator plans and how a used-up grant ends, and the one Grant write the
webhook may make."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support import objects
from support.clocks import NOW

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.access_requests import Scope, check_access_request
from jitgate.core.admission.approvals import spec_digest
from jitgate.core.admission.denials import why_denied
from jitgate.core.admission.grant_writes import check_grant_write
from jitgate.core.admission.writes import Identity, Operation, Write
from jitgate.core.api import AccessPolicy, Grant
from jitgate.core.extensions import Extended
from jitgate.core.grant_index import IndexedGrant
from jitgate.core.grants import end_grant, is_used_up
from jitgate.core.policy import Namespace, Policies
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import World
from jitgate.core.requests.stored import read_request

ALICE = Identity("alice", ("developers",))
WEBHOOK = "system:serviceaccount:jitgate:jitgate-webhook"
OPERATOR = "jitgate-operator"


def refusal(policy: AccessPolicy, **spec: Any) -> tuple[str, str] | None:
    obj = objects.access_request(requester={"user": "alice", "groups": ["developers"]}, **spec)
    refused = check_access_request(
        Write("CREATE", ALICE, obj, None),
        operator_user=OPERATOR,
        policy=lambda _: None,
        scope=lambda _: Scope(Policies.of([policy]), Namespace("prod", {})),
        now=NOW,
    )
    return (refused.reason, refused.message) if refused else None


# ------------------------------------------------------------------ maxUses at admission


def test_a_policy_may_require_a_limited_number_of_uses() -> None:
    policy = objects.policy_model(maxUses={"required": True, "max": 3})
    assert refusal(policy) == (
        "MaxUsesRequired",
        "AccessPolicy production requires a limited number of uses: ask with --max-uses N "
        "(at most 3), e.g. --max-uses 1 for one-time access",
    )
    assert refusal(policy, maxUses=1) is None


def test_a_policy_caps_the_uses_a_request_may_ask_for() -> None:
    policy = objects.policy_model(maxUses={"max": 3})
    assert refusal(policy, maxUses=4) == (
        "MaxUsesTooMany",
        "maxUses 4 is too many: AccessPolicy production allows at most 3 uses; "
        "ask for --max-uses 3 or fewer",
    )
    assert refusal(policy, maxUses=3) is None
    assert refusal(policy) is None  # not required: an unlimited grant


# ------------------------------------------------------------------ startAt at admission


def at(delta: dt.timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_start_in_the_past_is_refused_with_the_time_it_is() -> None:
    assert refusal(objects.policy_model(), startAt=at(-dt.timedelta(minutes=5))) == (
        "StartAtInPast",
        "startAt 2026-11-21T09:55:00Z is in the past (it is now 2026-11-21T10:00:00Z); "
        "leave it out to start at approval, or give a later time",
    )


def test_a_start_too_far_ahead_names_the_policys_limit() -> None:
    policy = objects.policy_model(maxStartAhead="24h")
    assert refusal(policy, startAt=at(dt.timedelta(hours=25))) == (
        "StartAtTooFar",
        "startAt 2026-11-22T11:00:00Z is too far ahead: AccessPolicy production allows "
        "scheduling at most 24h ahead (until 2026-11-22T10:00:00Z)",
    )
    assert refusal(policy, startAt=at(dt.timedelta(hours=23))) is None


def test_break_glass_cannot_be_scheduled() -> None:
    policy = objects.policy_model(breakGlass={"users": ["alice"]})
    reason, message = refusal(policy, breakGlass=True, startAt=at(dt.timedelta(hours=1))) or (
        "",
        "",
    )
    assert (reason, message.split(":")[0]) == ("Invalid", "break-glass access starts at once")


# ------------------------------------------------------------------ the operator


def world(now: dt.datetime = NOW) -> World:
    policy = objects.policy_model(requiredApprovals=1, pendingTimeout="1h")
    return World(
        now=now, policies=[policy], namespace=Namespace("prod", {}), retention=dt.timedelta(days=1)
    )


def new_request(**spec: Any) -> Any:
    raw = objects.access_request(
        metadata={"uid": objects.REQUEST_UID},
        requester={"user": "alice", "groups": ["developers"]},
        duration="15m",
        **spec,
    )
    return read_request(raw)


def test_a_scheduled_request_waits_for_approval_until_its_start_plus_the_timeout() -> None:
    step = decide(new_request(startAt=at(dt.timedelta(hours=3))), world())
    assert step.status is not None and step.status.phase == "Pending"
    assert step.status.pending_deadline == NOW + dt.timedelta(hours=4)


def approved_early(start: dt.timedelta, approved_at: dt.timedelta) -> Grant:
    request = new_request(startAt=at(start), maxUses=2)
    pending = decide(request, world())
    assert pending.status is not None
    status = {
        **pending.status.to_wire(),
        "approvals": [objects.approval(at=NOW + approved_at, digest=spec_digest(request.spec))],
    }
    raw = {**request.to_wire(), "status": status}
    step = decide(read_request(raw), world(NOW + approved_at))  # type: ignore[arg-type]
    assert step.grant is not None, step
    return step.grant


def test_an_early_approval_issues_the_grant_from_the_scheduled_start() -> None:
    grant = approved_early(dt.timedelta(hours=2), dt.timedelta(minutes=10))
    assert grant.spec.not_before == NOW + dt.timedelta(hours=2)
    assert grant.spec.expires_at == NOW + dt.timedelta(hours=2, minutes=15)
    assert grant.spec.max_uses == 2


def test_a_late_approval_starts_the_grant_at_approval() -> None:
    grant = approved_early(dt.timedelta(minutes=5), dt.timedelta(minutes=30))
    assert grant.spec.not_before == NOW + dt.timedelta(minutes=30)


def test_a_used_up_grant_ends_with_its_own_record_and_reason() -> None:
    grant = objects.grant_model(max_uses=1, status={"phase": "Active", "uses": 1})
    request = read_request(
        objects.access_request(
            metadata={"uid": objects.REQUEST_UID},
            requester={"user": "alice", "groups": ["developers"]},
            status={
                "phase": "Approved",
                "policy": "production",
                "grant": {"name": grant.metadata.name, "expiresAt": "2026-11-21T10:15:00Z"},
            },
        )
    )
    ending = end_grant(
        grant, request, now=NOW + dt.timedelta(minutes=1), kind="Expired", actor=None,  # type: ignore[arg-type]
        reason="expired",
    )  # fmt: skip
    assert [r.event.type for r in ending.records] == ["grant.exhausted", "request.expired"]
    context = ending.records[0].event.context or {}
    assert (context["uses"], context["maxUses"]) == (1, 1)
    assert ending.request_status is not None
    assert ending.request_status.phase == "Expired"
    assert ending.request_status.message == "grant fix-web-0-x7k2 was used up (1 of 1 use)"
    assert ending.request_status.conditions[-1].reason == "GrantUsedUp"


# ------------------------------------------------------------------ the webhook's one write


def count_write(
    old_status: dict[str, Any] | None, new_status: dict[str, Any], **change: Any
) -> Any:
    old = objects.grant(max_uses=2, status=old_status, metadata={"resourceVersion": "5"})
    new = objects.grant(max_uses=2, status=new_status, metadata={"resourceVersion": "5"})
    new["spec"].update(change)
    refused = check_grant_write(
        Write("UPDATE", Identity(WEBHOOK, ()), new, old),
        operator_user=OPERATOR,
        collectors=frozenset(),
        webhook_user=WEBHOOK,
    )
    return refused.message if refused else None


def test_the_webhook_may_count_one_use_and_nothing_else() -> None:
    assert count_write(None, {"uses": 1}) is None
    assert count_write({"uses": 1, "lastUse": "a"}, {"uses": 2, "lastUse": "b"}) is None
    assert count_write({"phase": "Active", "uses": 1}, {"phase": "Active", "uses": 2}) is None
    assert count_write({"uses": 2}, {"uses": 3}) == (
        "a use count moves up by one within maxUses 2, not from 2 to 3"
    )
    assert count_write({"uses": 1}, {"uses": 0}) is not None  # never set back
    assert count_write(None, {"uses": 2}) is not None  # one at a time
    assert count_write(None, {"uses": 1}, user="mallory") == (
        "the jitgate webhook may only count a use (status.uses, status.lastUse) of a Grant"
    )
    assert count_write(None, {"uses": 1, "phase": "Expired"}) is not None


@pytest.mark.parametrize("operation", ["CREATE", "DELETE"])
def test_the_webhook_may_not_create_or_delete_grants(operation: Operation) -> None:
    refused = check_grant_write(
        Write(operation, Identity(WEBHOOK, ()), objects.grant(), objects.grant()),
        operator_user=OPERATOR,
        collectors=frozenset(),
        webhook_user=WEBHOOK,
    )
    assert refused is not None and refused.reason == "GrantWriteForbidden"


# ------------------------------------------------------------------ extensions at admission


def earlier_request(**status: Any) -> Any:
    raw = objects.access_request(
        metadata={"uid": objects.REQUEST_UID},
        requester={"user": "alice", "groups": ["developers"]},
        status={
            "phase": "Approved",
            "policy": "production",
            "grant": {"name": "fix-web-0-x7k2", "expiresAt": "2026-11-21T10:15:00Z"},
            **status,
        },
    )
    return read_request(raw)


def extension_refusal(
    policy: AccessPolicy | None = None,
    *,
    request: Any = None,
    grant: Any = "live",
    **spec: Any,
) -> tuple[str, str] | None:
    earlier = earlier_request() if request is None else request or None
    if grant == "live":
        grant = objects.grant_model(not_before=NOW - dt.timedelta(minutes=5)).spec
    extended = Extended("fix-web-0", earlier, grant)
    obj = objects.access_request(
        "more",
        requester={"user": "alice", "groups": ["developers"]},
        extends={"name": "fix-web-0"},
        duration=spec.pop("duration", "15m"),
        **spec,
    )
    refused = check_access_request(
        Write("CREATE", ALICE, obj, None),
        operator_user=OPERATOR,
        policy=lambda _: None,
        scope=lambda _: Scope(
            Policies.of([policy or objects.policy_model()]), Namespace("prod", {})
        ),
        now=NOW,
        extended=extended,
    )
    return (refused.reason, refused.message) if refused else None


def test_an_extension_of_a_live_grant_for_the_same_actions_is_admitted() -> None:
    assert extension_refusal() is None


def test_an_extension_for_other_actions_is_refused() -> None:
    assert extension_refusal(actions=[{"verb": "exec", "names": ["web-1"]}]) == (
        "ExtendsOtherActions",
        "an extension asks for exactly the actions of fix-web-0; for other actions ask with "
        "kubectl jit request",
    )


def test_only_the_requester_extends_and_only_a_live_grant() -> None:
    bobs = read_request(
        {**earlier_request().to_wire(), "spec": {**earlier_request().spec.to_wire(),
                                                 "requester": {"user": "bob", "groups": []}}}
    )  # fmt: skip
    assert extension_refusal(request=bobs) == (
        "ExtendsOthers",
        "AccessRequest fix-web-0 is bob's; only its requester may extend it",
    )
    assert extension_refusal(request=False) == (
        "ExtendsUnknown",
        "AccessRequest fix-web-0 does not exist in this namespace; extend one of your approved "
        "requests (kubectl jit list --mine)",
    )
    ended = objects.grant_model(
        not_before=NOW - dt.timedelta(minutes=20), expires_at=NOW - dt.timedelta(minutes=5)
    ).spec
    assert extension_refusal(grant=ended) == (
        "ExtendsNotLive",
        "the grant of AccessRequest fix-web-0 has ended at 2026-11-21T09:55:00Z; ask anew "
        "with kubectl jit request",
    )
    pending = earlier_request(phase="Pending", grant=None)
    assert (extension_refusal(request=pending) or ("", ""))[0] == "ExtendsNotLive"


def test_an_extension_is_capped_from_the_chains_first_start() -> None:
    # The grant began at 09:55 and ends at 10:15; maxDuration 1h leaves 40m more.
    assert extension_refusal(duration="45m") == (
        "ExtensionTooLong",
        "extending by 45m would make access last 1h5m from 2026-11-21T09:55:00Z, more than "
        "the maxDuration 1h (AccessPolicy production); ask for --by 40m or less",
    )
    assert extension_refusal(duration="40m") is None
    generous = objects.policy_model(extensions={"maxTotalDuration": "2h"})
    assert extension_refusal(generous, duration="45m") is None


def test_an_extension_cannot_be_scheduled_limited_or_break_glass() -> None:
    assert extension_refusal(maxUses=1) == (
        "Invalid",
        "an extension continues the grant it extends at once and as it is: leave out maxUses",
    )
    assert (extension_refusal(breakGlass=True) or ("", ""))[0] == "Invalid"


def test_a_used_up_grant_being_ended_still_says_it_was_used() -> None:
    grant = objects.grant_model(max_uses=1, status={"uses": 1})
    indexed = IndexedGrant("prod", "fix-web-0-x7k2", "u", grant.spec, True, is_used_up(grant))
    attempt = AttemptedAction(verb="exec", namespace="prod", resource="pods", name="web-0")
    assert why_denied((indexed,), "alice", attempt, NOW) == (
        "grant fix-web-0-x7k2 was for 1 use and has been used"
    )
