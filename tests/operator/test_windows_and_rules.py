"""Schedules and autoApprove rules through the operator: a request refused outside a Deny
window, a request approved by a rule (recorded with the rule and its inputs' digest), and
policies that are not Ready (a rule that does not compile, an unknown time zone)."""

from __future__ import annotations

from typing import Any

from support.clocks import NOW

POLICIES = "jitgate.dev/v1alpha1/accesspolicies"
ON_CALL = {
    "rules": [
        {"name": "on-call-ls", "expression": "'oncall' in requester.groups && "
         "request.actions.all(a, a.command == ['ls'])"},
    ]
}  # fmt: skip


def ready(jit: Any, name: str = "production") -> tuple[str, str, str] | None:
    policy = jit.api.read_object(POLICIES, None, name)
    found = next(
        (c for c in policy.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None
    )
    return None if found is None else (found["status"], found["reason"], found["message"])


async def test_a_rule_approves_and_the_record_names_it_with_the_inputs_digest(jit) -> None:
    jit.policy(autoApprove=ON_CALL)
    async with jit.running():
        await jit.until(lambda: ready(jit) is not None)
        assert ready(jit) == ("True", "Ready", "every part of the policy is in force")
        jit.request("ls", groups=("oncall",), actions=[{"verb": "exec", "command": ["ls"]}])
        obj = await jit.until_phase("ls", "Approved")
    [auto] = obj["status"]["autoApprovals"]
    assert (auto["policy"], auto["rule"]) == ("production", "on-call-ls")
    assert obj["status"]["message"] == (
        "approved by rule on-call-ls of AccessPolicy production under AccessPolicy production "
        "for 15m"
    )
    assert jit.grant_of("ls")["spec"]["autoApprovals"] == [auto]
    [record] = [r for r in jit.records() if r["type"] == "request.approval"]
    assert record["context"]["rule"] == "on-call-ls"
    assert record["context"]["inputsDigest"] == auto["inputsDigest"]
    assert record["context"]["inputs"]["requester"] == {"user": "alice", "groups": ["oncall"]}


async def test_a_rule_that_does_not_compile_approves_nothing_and_the_policy_is_not_ready(
    jit,
) -> None:
    broken = {"rules": [{"name": "typo", "expression": "requestor.user == 'alice'"}]}
    jit.policy(autoApprove=broken)
    async with jit.running():
        await jit.until(lambda: ready(jit) is not None)
        assert ready(jit) == (
            "False",
            "RuleDoesNotCompile",
            "autoApprove approves nothing until fixed: rule typo: Undefined variable or "
            "function: 'requestor'",
        )
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Pending")
    assert "autoApprovals" not in obj["status"]


async def test_an_unknown_time_zone_marks_the_policy_not_ready_and_requests_are_denied(
    jit,
) -> None:
    # The emulator has no schema validation, like a policy stored before the CRD checked it.
    jit.policy(schedule={"timeZone": "Europe/Atlantis", "windows": [{"days": ["Sat"]}]})
    async with jit.running():
        await jit.until(lambda: ready(jit) is not None)
        status, reason, message = ready(jit) or ("", "", "")
        assert (status, reason) == ("False", "Invalid")
        assert "unknown time zone 'Europe/Atlantis'" in message
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Denied")
    assert obj["status"]["conditions"][0]["reason"] == "PolicyInvalid"


async def test_outside_a_deny_window_a_request_is_refused_with_when_it_opens(jit) -> None:
    office = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}
    jit.policy(schedule={"timeZone": "America/New_York", "windows": [office]})
    jit.clock.set(NOW)  # Saturday 05:00 in New York
    async with jit.running():
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Denied")
    assert obj["status"]["message"] == (
        "AccessPolicy production allows it only Mon-Fri 09:00-17:00 America/New_York, and that "
        "window is closed; it opens next at Mon 2026-11-23 09:00 EST (2026-11-23T14:00:00Z); "
        "ask again then"
    )
