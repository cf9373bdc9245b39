"""The operator's decisions under AccessPolicy schedules: refused outside a Deny window,
more approvals outside a RequireApprovals one, grants that end when the window closes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from support.clocks import NOW
from support.objects import policy_model

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.clock import format_time
from jitgate.core.policy import Namespace
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import World
from jitgate.core.requests.stored import read_request

OFFICE = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}
DENY = {"timeZone": "Europe/Berlin", "windows": [OFFICE]}
MORE = {**DENY, "outsideWindow": {"action": "RequireApprovals", "approvals": 2}}
MONDAY_16_50 = dt.datetime(2026, 11, 23, 15, 50, tzinfo=dt.UTC)  # 16:50 CET
MONDAY_17 = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)
SATURDAY = NOW


def world(policy: AccessPolicy, now: dt.datetime) -> World:
    return World(
        now=now, policies=[policy], namespace=Namespace("prod", {}), retention=dt.timedelta(days=7)
    )


def request(status: dict[str, Any] | None = None, duration: str = "1h") -> AccessRequest:
    raw = {
        "metadata": {"name": "fix", "namespace": "prod", "uid": "u-1"},
        "spec": {
            "actions": [{"verb": "exec"}],
            "duration": duration,
            "reason": "INC-1: the database is down",
            "requester": {"user": "alice", "groups": ["dev"]},
        },
        "status": status or {},
    }
    parsed = read_request(raw)
    assert isinstance(parsed, AccessRequest)
    return parsed


def pending(*approvers: str, at: dt.datetime) -> dict[str, Any]:
    digest = spec_digest(request().spec)
    return {
        "phase": "Pending",
        "policy": "production",
        "policies": [{"name": "production", "requiredApprovals": 1}],
        "requiredApprovals": 1,
        "pendingDeadline": format_time(at + dt.timedelta(hours=1)),
        "approvals": [
            {
                "user": user,
                "groups": ["sre"],
                "decision": "Approve",
                "time": format_time(at),
                "specDigest": digest,
            }
            for user in approvers
        ],
        "observedApprovals": 0,
    }


def test_a_request_outside_a_deny_window_is_refused_with_when_it_opens() -> None:
    step = decide(request(), world(policy_model(schedule=DENY), SATURDAY))
    assert step.status is not None and step.status.phase == "Denied"
    assert step.status.message == (
        "AccessPolicy production allows it only Mon-Fri 09:00-17:00 Europe/Berlin, and that "
        "window is closed; it opens next at Mon 2026-11-23 09:00 CET (2026-11-23T08:00:00Z); "
        "ask again then"
    )
    assert step.status.conditions[0].reason == "OutsideWindow"


def test_inside_the_window_the_grant_ends_when_it_closes() -> None:
    policy = policy_model(schedule=DENY)
    created = decide(request(), world(policy, MONDAY_16_50))
    assert created.status is not None and created.status.phase == "Pending"
    assert created.wake_at == MONDAY_17  # the window closes before the pending deadline
    step = decide(request(pending("bob", at=MONDAY_16_50)), world(policy, MONDAY_16_50))
    assert step.grant is not None
    assert step.grant.spec.expires_at == MONDAY_17
    assert step.status is not None and step.status.message == (
        "approved by bob under AccessPolicy production for 10m, until the window of "
        "AccessPolicy production closes"
    )


def test_a_request_still_pending_when_the_window_closes_is_denied() -> None:
    step = decide(request(pending(at=MONDAY_16_50)), world(policy_model(schedule=DENY), MONDAY_17))
    assert step.status is not None and step.status.phase == "Denied"
    assert step.status.message is not None
    assert step.status.message.startswith("not approved before the window closed: ")


def test_outside_a_require_approvals_window_two_approvals_are_needed() -> None:
    policy = policy_model(schedule=MORE)
    created = decide(request(), world(policy, SATURDAY))
    assert created.status is not None and created.status.phase == "Pending"
    assert created.status.message is not None
    assert created.status.message.startswith(
        "waiting for 2 approvals under AccessPolicy production (AccessPolicy production allows "
        "it only Mon-Fri 09:00-17:00 Europe/Berlin; it opens next at Mon 2026-11-23 09:00 CET"
    )
    one = decide(request(pending("bob", at=SATURDAY)), world(policy, SATURDAY))
    assert one.grant is None
    assert one.status is not None and one.status.message is not None
    assert one.status.message.startswith("1 of 2 approvals (bob)")
    two = decide(request(pending("bob", "carol", at=SATURDAY)), world(policy, SATURDAY))
    assert two.grant is not None
    # Approved for outside the window: it lasts as asked and the webhook lets it act there.
    assert two.grant.spec.approved_outside_window == ["production"]
    assert two.grant.spec.expires_at == SATURDAY + dt.timedelta(hours=1)


def test_break_glass_is_not_refused_by_a_closed_window() -> None:
    policy = policy_model(schedule=DENY, breakGlass={"users": ["alice"]})
    raw = request().model_copy(
        update={"spec": request().spec.model_copy(update={"break_glass": True})}
    )
    step = decide(raw, world(policy, SATURDAY))
    assert step.status is not None and step.status.phase == "Approved"
