"""The state machine's decisions: one transition per step, derived from the stored status."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.clocks import NOW

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest, Condition, Grant
from jitgate.core.clock import format_time
from jitgate.core.grants import end_grant, ending_kind, grant_name
from jitgate.core.policy import Namespace
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import Step, World, set_condition
from jitgate.core.requests.stored import read_request
from jitgate.core.wire import Unreadable

POLICY = AccessPolicy.model_validate(
    {
        "metadata": {"name": "production"},
        "spec": {
            "namespaces": {"names": ["prod"]},
            "actions": ["exec"],
            "approvers": {"groups": ["sre"]},
            "requiredApprovals": 2,
        },
    }
)


def world(now: dt.datetime = NOW) -> World:
    return World(
        now=now,
        policies=[POLICY],
        namespace=Namespace("prod", {}),
        retention=dt.timedelta(days=7),
    )


def request(status: dict[str, Any] | None = None, **meta: Any) -> AccessRequest:
    raw = {
        "metadata": {"name": "fix", "namespace": "prod", "uid": "u-1", **meta},
        "spec": {
            "actions": [{"verb": "exec"}],
            "reason": "INC-1",
            "requester": {"user": "alice", "groups": ["dev"]},
        },
        "status": status or {},
    }
    parsed = read_request(raw)
    assert isinstance(parsed, AccessRequest)
    return parsed


def approval(user: str, decision: str = "Approve") -> dict[str, Any]:
    spec = request().spec
    return {
        "user": user,
        "groups": ["sre"],
        "decision": decision,
        "time": format_time(NOW),
        "specDigest": spec_digest(spec),
    }


def pending(approvals: list[dict[str, Any]], observed: int = 0) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "policy": "production",
        "requiredApprovals": 2,
        "pendingDeadline": format_time(NOW + dt.timedelta(hours=1)),
        "approvals": approvals,
        "observedApprovals": observed,
    }


def test_a_new_request_goes_pending_and_records_its_creation_only() -> None:
    step = decide(request(), world())
    assert step.status is not None and step.status.phase == "Pending"
    # What it is for, as kubectl get's ACTIONS column shows it; in the patch the operator sends.
    assert step.status.to_patch()["actions"] == "exec pod/*"
    assert [r.key for r in step.records] == ["u-1/request.created"]
    assert step.wake_at == NOW + dt.timedelta(hours=1)


def test_recorded_approvals_are_not_recorded_again() -> None:
    step = decide(request(pending([approval("bob")], observed=1)), world())
    assert step == Step(wake_at=NOW + dt.timedelta(hours=1))
    assert not step.acts


def test_each_new_approval_is_recorded_once_by_index() -> None:
    step = decide(request(pending([approval("bob"), approval("carol")], observed=1)), world())
    assert [r.key for r in step.records] == [
        "u-1/request.approval/1",
        "u-1/request.approved",
    ]
    assert step.grant is not None
    assert step.status is not None and step.status.observed_approvals == 2


def test_a_terminal_request_only_waits_for_retention() -> None:
    finished = Condition(
        type="Approved", status="False", reason="x", last_transition_time=NOW
    ).to_wire()
    done = request({"phase": "Denied", "conditions": [finished]})
    assert decide(done, world(NOW + dt.timedelta(days=6))) == Step(
        wake_at=NOW + dt.timedelta(days=7)
    )
    assert decide(done, world(NOW + dt.timedelta(days=7))).delete


def test_a_request_being_deleted_is_left_to_the_deletion_handler() -> None:
    assert not decide(request(deletionTimestamp=format_time(NOW)), world()).acts


def test_an_unreadable_spec_is_reported_not_raised() -> None:
    parsed = read_request({"metadata": {"name": "x"}, "spec": {"actions": []}})
    assert isinstance(parsed, Unreadable)
    assert parsed.problem.startswith("spec.actions")


def test_set_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    first = set_condition([], "Approved", "Unknown", "Waiting", "0 of 2", NOW)
    later = set_condition(first, "Approved", "Unknown", "Waiting", "1 of 2", NOW + dt.timedelta(1))
    assert later[0].last_transition_time == NOW
    flipped = set_condition(later, "Approved", "True", "Approved", "", NOW + dt.timedelta(2))
    assert flipped[0].last_transition_time == NOW + dt.timedelta(2)


def grant(phase: str | None = None) -> Grant:
    return Grant.model_validate(
        {
            "metadata": {"name": "fix-bbbbb", "namespace": "prod", "uid": "g-1"},
            "spec": {
                "user": "alice",
                "actions": [{"verb": "exec"}],
                "notBefore": format_time(NOW),
                "expiresAt": format_time(NOW + dt.timedelta(minutes=15)),
                "accessRequest": {"name": "fix", "uid": "u-1"},
                "policy": "production",
            },
            "status": {"phase": phase} if phase else {},
        }
    )


def test_an_ended_grant_is_not_recorded_again() -> None:
    owner = request(
        {"phase": "Approved", "grant": {"name": "fix-bbbbb", "expiresAt": format_time(NOW)}}
    )
    first = end_grant(grant(), owner, now=NOW, kind="Expired", actor=None, reason="expired")
    assert [r.key for r in first.records] == ["g-1/grant.expired", "u-1/request.expired"]
    again = end_grant(grant("Expired"), owner, now=NOW, kind="Expired", actor=None, reason="x")
    assert again.records == ()
    assert again.request_status is not None  # the request is still brought up to date


def test_a_grant_deleted_before_its_expiry_was_revoked() -> None:
    assert ending_kind(grant(), NOW + dt.timedelta(minutes=14)) == "Revoked"
    assert ending_kind(grant(), NOW + dt.timedelta(minutes=15)) == "Expired"


SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


@given(st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z"))
def test_grant_names_are_stable_valid_and_bounded(name: str) -> None:
    first = grant_name(name, "uid-1")
    assert first == grant_name(name, "uid-1")
    assert len(first) <= 253
    assert SUBDOMAIN.fullmatch(first)


@pytest.mark.parametrize("uid", ["a", "b", "c"])
def test_grant_names_differ_for_a_recreated_request(uid: str) -> None:
    assert grant_name("fix-web-0", uid) != grant_name("fix-web-0", uid + "x")


def test_the_grant_carries_only_the_approvals_that_counted() -> None:
    stale = {**approval("bob"), "specDigest": "sha256:" + "0" * 64}
    step = decide(request(pending([stale, approval("bob"), approval("carol")])), world())
    assert step.grant is not None
    chain = step.grant.spec.approvals
    assert [(a.user, a.spec_digest == approval("bob")["specDigest"]) for a in chain] == [
        ("bob", True),
        ("carol", True),
    ]


def test_the_grant_carries_the_requests_reason_so_every_use_is_audited_with_it() -> None:
    step = decide(request(pending([approval("bob"), approval("carol")])), world())
    assert step.grant is not None
    assert (step.grant.spec.reason, step.grant.spec.ticket) == ("INC-1", None)


def test_the_denier_is_the_one_whose_deny_counted() -> None:
    ignored_deny = {**approval("carol", "Deny"), "specDigest": "sha256:" + "0" * 64}
    step = decide(
        request(pending([ignored_deny, {**approval("carol", "Deny"), "comment": "no"}])), world()
    )
    assert step.status is not None and step.status.phase == "Denied"
    assert step.status.message == "denied by carol: no"
