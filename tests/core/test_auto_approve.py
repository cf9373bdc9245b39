"""autoApprove: CEL rules over the request, the requester and the time; recorded with the rule
and a digest of its inputs; one policy's rule never satisfies another; never break-glass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from support.clocks import NOW
from support.objects import policy_model

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.autoapprove import evaluate, inputs, nesting, problems
from jitgate.core.canonical import digest
from jitgate.core.clock import format_time
from jitgate.core.policy import Namespace
from jitgate.core.requests.decide import decide
from jitgate.core.requests.step import World
from jitgate.core.requests.stored import read_request

ON_CALL_READ_ONLY = (
    "'oncall' in requester.groups && request.actions.all(a, a.verb == 'exec' && "
    "size(a.command) > 0 && a.command[0] in ['ls', 'cat']) && request.durationSeconds <= 1800"
)
BUSINESS_HOURS = (
    "time.weekday in ['Mon','Tue','Wed','Thu','Fri'] && time.hour >= 9 && time.hour < 17"
)


def rules(*pairs: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"rules": [{"name": n, "expression": e} for n, e in pairs], **extra}


def request(
    command: list[str] | None = None,
    groups: tuple[str, ...] = ("oncall",),
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> AccessRequest:
    action: dict[str, Any] = {"verb": "exec", "names": ["web-0"]}
    if command is not None:
        action["command"] = command
    raw = {
        "metadata": {"name": "fix", "namespace": "prod", "uid": "u-1"},
        "spec": {
            "actions": [action],
            "reason": "INC-1",
            "requester": {"user": "alice", "groups": list(groups)},
            **spec,
        },
        "status": status or {},
    }
    parsed = read_request(raw)
    assert isinstance(parsed, AccessRequest)
    return parsed


def world(*policies: AccessPolicy, now: dt.datetime = NOW) -> World:
    return World(
        now=now,
        policies=list(policies),
        namespace=Namespace("prod", {"tier": "gold"}),
        retention=dt.timedelta(days=7),
    )


def test_inputs_are_what_the_docs_promise_in_the_policy_time_zone() -> None:
    facts = inputs(request(["ls"]), {"tier": "gold"}, dt.timedelta(minutes=15), NOW, "Asia/Tokyo")
    assert facts == {
        "request": {
            "name": "fix",
            "namespace": "prod",
            "namespaceLabels": {"tier": "gold"},
            "actions": [
                {
                    "verb": "exec",
                    "resource": "pods",
                    "names": ["web-0"],
                    "container": "",
                    "command": ["ls"],
                }
            ],
            "durationSeconds": 900,
            "reason": "INC-1",
            "ticket": "",
        },
        "requester": {"user": "alice", "groups": ["oncall"]},
        # Saturday 10:00 UTC is 19:00 in Tokyo.
        "time": {
            "weekday": "Sat",
            "hour": 19,
            "minute": 0,
            "date": "2026-11-21",
            "timeZone": "Asia/Tokyo",
        },
    }


def test_the_first_true_rule_approves_and_errors_approve_nothing() -> None:
    policy = policy_model(
        autoApprove=rules(
            ("not-a-bool", "request.reason"),
            ("fails", "request.actions[3].verb == 'exec'"),
            ("on-call", ON_CALL_READ_ONLY),
        )
    )
    facts = inputs(request(["ls"]), {}, dt.timedelta(minutes=15), NOW, "UTC")
    outcome = evaluate(policy, facts)
    assert outcome.match is not None
    assert (outcome.match.rule, outcome.match.inputs_digest) == ("on-call", digest(facts))
    assert [e.split(":")[0] for e in outcome.errors] == ["rule not-a-bool", "rule fails"]
    interactive = inputs(request(), {}, dt.timedelta(minutes=15), NOW, "UTC")
    assert evaluate(policy, interactive).match is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("request.reason ==", "Syntax error"),
        ("requestor.user == 'alice'", "Undefined variable or function: 'requestor'"),
        (
            "request.actions.all(a, a.names.all(n, request.actions.exists(b, b.verb == n)))",
            "comprehensions nest more than 2 deep",
        ),
    ],
)
def test_a_rule_that_does_not_compile_is_a_problem_and_approves_nothing(
    expression: str, problem: str
) -> None:
    policy = policy_model(autoApprove=rules(("bad", expression), ("always", "true")))
    [found] = problems(policy)
    assert found.startswith("rule bad: ") and problem in found
    facts = inputs(request(["ls"]), {}, dt.timedelta(minutes=15), NOW, "UTC")
    assert evaluate(policy, facts).match is None  # not even the rule that would be true


def test_every_rule_in_the_examples_compiles() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    found = 0
    for path in sorted(examples.glob("accesspolicy-*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            policy = AccessPolicy.model_validate(document)
            found += len(policy.spec.auto_approve.rules) if policy.spec.auto_approve else 0
            assert problems(policy) == [], path.name
    assert found >= 2


def test_nesting_skips_parentheses_in_strings() -> None:
    assert nesting("request.actions.all(a, a.verb == '(.exists(')") == 1


def test_rule_names_and_lengths_are_bounded() -> None:
    with pytest.raises(ValidationError):
        policy_model(autoApprove=rules(("Bad Name", "true")))
    with pytest.raises(ValidationError):
        policy_model(autoApprove=rules(("long", "true || " * 300 + "true")))


# ------------------------------------------------------------------ in the state machine


def test_a_matching_rule_approves_a_new_request_at_once_and_records_why() -> None:
    policy = policy_model(autoApprove=rules(("on-call", ON_CALL_READ_ONLY)))
    step = decide(request(["ls"]), world(policy))
    assert step.status is not None and step.status.phase == "Approved"
    [approval] = step.status.auto_approvals
    assert (approval.policy, approval.rule) == ("production", "on-call")
    assert step.status.message == (
        "approved by rule on-call of AccessPolicy production under AccessPolicy production for 15m"
    )
    assert step.grant is not None and step.grant.spec.auto_approvals == [approval]
    kinds = [r.key for r in step.records]
    assert kinds == [
        "u-1/request.created",
        "u-1/request.approval/auto/production",
        "u-1/request.approved",
    ]
    recorded = step.records[1].event.context or {}
    assert recorded["rule"] == "on-call"
    assert recorded["inputsDigest"] == approval.inputs_digest == digest(recorded["inputs"])
    approved: dict[str, Any] = dict(step.records[2].event.context or {})
    assert approved["autoApprovals"] == [approval.to_wire()]
    assert step.notify == "approved"


def test_a_rule_of_one_policy_never_satisfies_another() -> None:
    ruled = policy_model(autoApprove=rules(("on-call", ON_CALL_READ_ONLY)))
    other = policy_model("team", requiredApprovals=1)
    step = decide(request(["ls"]), world(ruled, other))
    assert step.status is not None and step.status.phase == "Pending"
    assert [a.policy for a in step.status.auto_approvals] == ["production"]
    # bob (sre) approves under team: now every policy is satisfied.
    stored = {
        **step.status.to_wire(),
        "approvals": [
            {
                "user": "bob",
                "groups": ["sre"],
                "decision": "Approve",
                "time": format_time(NOW),
                "specDigest": spec_digest(request(["ls"]).spec),
            }
        ],
    }
    then = decide(request(["ls"], status=stored), world(ruled, other))
    assert then.status is not None and then.status.phase == "Approved"
    assert then.status.message is not None
    assert then.status.message.startswith(
        "approved by bob, rule on-call of AccessPolicy production"
    )


def test_break_glass_is_never_auto_approved() -> None:
    policy = policy_model(autoApprove=rules(("always", "true")), breakGlass={"groups": ["oncall"]})
    step = decide(request(["ls"], breakGlass=True), world(policy))
    assert step.status is not None and step.status.auto_approvals == []
    assert not any("auto" in r.key for r in step.records)


def test_evaluation_errors_leave_the_request_pending_and_are_recorded() -> None:
    policy = policy_model(autoApprove=rules(("fails", "request.actions[5].verb == 'exec'")))
    step = decide(request(["ls"]), world(policy))
    assert step.status is not None and step.status.phase == "Pending"
    [condition] = [c for c in step.status.conditions if c.type == "AutoApproved"]
    assert (condition.status, condition.reason) == ("False", "EvaluationError")
    assert "rule fails" in condition.message
    created = step.records[0].event.context or {}
    assert created["autoApproveErrors"] == [condition.message]
    # The rules see the hour, so the request is looked at again at the next one.
    assert step.wake_at == NOW + dt.timedelta(hours=1)


def test_business_hours_in_the_policy_time_zone_and_not_outside_a_stricter_window() -> None:
    berlin = {
        "timeZone": "Europe/Berlin",
        "windows": [
            {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00"}
        ],
        "outsideWindow": {"action": "RequireApprovals", "approvals": 2},
    }
    policy = policy_model(schedule=berlin, autoApprove=rules(("hours", BUSINESS_HOURS)))
    monday_9_berlin = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    assert decide(request(["ls"]), world(policy, now=monday_9_berlin)).grant is not None
    monday_8_berlin = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    waiting = decide(request(["ls"]), world(policy, now=monday_8_berlin))
    assert waiting.grant is None  # 08:00 in Berlin: the rule says from 09:00
    # A rule that is always true still does not count outside the RequireApprovals window.
    always = policy_model(schedule=berlin, autoApprove=rules(("always", "true")))
    outside = decide(request(["ls"]), world(always, now=NOW))
    assert outside.status is not None and outside.status.phase == "Pending"
    assert outside.status.message is not None
    assert outside.status.message.startswith("waiting for 2 approvals")
