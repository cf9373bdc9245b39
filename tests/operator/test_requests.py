"""AccessRequests end to end: kopf in-process, the emulator, a manual clock, a real audit log."""

from __future__ import annotations

import datetime as dt

from jitgate.core.clock import parse_time

AR = "jitgate.dev/v1alpha1/accessrequests"


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


async def test_a_new_request_becomes_pending_with_its_policy_and_deadline(jit) -> None:
    jit.policy(requiredApprovals=2, pendingTimeout="30m")
    async with jit.running():
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Pending")
        await jit.until(lambda: ("Pending", obj["status"]["message"]) in jit.events("fix-web-0"))
    status = obj["status"]
    assert status["policy"] == "production"
    assert status["requiredApprovals"] == 2
    assert status["approvals"] == []
    assert status["observedApprovals"] == 0
    assert parse_time(status["pendingDeadline"]) == jit.clock.now() + dt.timedelta(minutes=30)
    assert condition(obj, "Approved")["status"] == "Unknown"
    created = jit.records()
    assert [r["type"] for r in created] == ["request.created"]
    assert created[0]["actor"] == {"user": "alice", "groups": ["developers"]}
    assert created[0]["context"]["policy"]["name"] == "production"
    assert created[0]["context"]["spec"]["reason"] == "INC-1234: worker stuck"


async def test_two_approvals_need_two_distinct_approvers(jit) -> None:
    jit.policy(requiredApprovals=2)
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        jit.approve("fix-web-0", "bob", comment="again")  # the webhook refuses this; we ignore it
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 2)
        assert jit.phase("fix-web-0") == "Pending"
        assert "1 of 2 approvals (bob)" in jit.get("fix-web-0")["status"]["message"]
        jit.approve("fix-web-0", "carol")
        obj = await jit.until_phase("fix-web-0", "Approved")
    assert obj["status"]["grant"]["name"].startswith("fix-web-0-")
    records = jit.records()
    assert [r["type"] for r in records] == [
        "request.created",
        "request.approval",
        "request.approval",
        "request.approval",
        "request.approved",
        "grant.created",
    ]
    approvals = [r for r in records if r["type"] == "request.approval"]
    assert [(r["actor"]["user"], r["context"]["counted"]) for r in approvals] == [
        ("bob", True),
        ("bob", False),
        ("carol", True),
    ]
    assert approvals[1]["context"]["ignored"] == "bob already decided"
    # The context is what the approver saw: the spec and the policy as resolved.
    assert approvals[0]["context"]["spec"]["actions"] == [{"verb": "exec", "names": ["web-0"]}]
    assert approvals[0]["context"]["policy"]["spec"]["requiredApprovals"] == 2
    assert records[4]["context"]["approvedBy"] == ["bob", "carol"]


async def test_self_approval_is_ignored(jit) -> None:
    jit.policy()
    async with jit.running():
        jit.request("fix-web-0", groups=("developers", "sre"))
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "alice", groups=("developers", "sre"))
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.phase("fix-web-0") == "Pending"
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
    approval = next(r for r in jit.records() if r["type"] == "request.approval")
    assert approval["context"]["counted"] is False
    assert "self-approval is not allowed" in approval["context"]["ignored"]


async def test_approvals_are_rechecked_from_stamped_identity_and_spec_digest(jit) -> None:
    jit.policy()
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "mallory", groups=("developers",))  # not an approver
        jit.approve("fix-web-0", "dave", digest="sha256:" + "0" * 64)  # another spec
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 2)
        assert jit.phase("fix-web-0") == "Pending"
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
    ignored = [
        r["context"].get("ignored") for r in jit.records() if r["type"] == "request.approval"
    ]
    assert ignored == [
        "mallory is not an approver under any governing policy",
        "dave decided on a different spec than the request's",
        None,
    ]


async def test_a_deny_denies(jit) -> None:
    jit.policy(requiredApprovals=2)
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        jit.approve("fix-web-0", "carol", "Deny", comment="use the runbook")
        obj = await jit.until_phase("fix-web-0", "Denied")
        await jit.until(lambda: any(r == "Denied" for r, _ in jit.events("fix-web-0")))
    assert obj["status"]["message"] == "denied by carol: use the runbook"
    assert condition(obj, "Approved")["reason"] == "DeniedByApprover"
    assert "grant" not in obj["status"]
    assert jit.grants() == []
    records = jit.records()
    assert [r["type"] for r in records] == [
        "request.created",
        "request.approval",
        "request.approval",
        "request.denied",
    ]
    assert records[-1]["actor"]["user"] == "carol"


async def test_requests_no_policy_accepts_are_denied_with_the_reason(jit) -> None:
    jit.policy(requesters={"groups": ["developers"]}, maxDuration="1h")
    async with jit.running():
        jit.request("too-long", duration="2h")
        jit.request("stranger", user="eve", groups=("contractors",))
        jit.request("unprotected", actions=[{"verb": "delete", "resource": "secrets"}])
        jit.request("unstamped", user=None)
        for name in ("too-long", "stranger", "unprotected", "unstamped"):
            await jit.until_phase(name, "Denied")
        await jit.until(lambda: any(r == "Denied" for r, _ in jit.events("unstamped")))
    reasons = {
        name: condition(jit.get(name), "Approved")["reason"]
        for name in ("too-long", "stranger", "unprotected", "unstamped")
    }
    assert reasons == {
        "too-long": "DurationTooLong",
        "stranger": "RequesterNotEligible",
        "unprotected": "NoPolicy",
        "unstamped": "RequesterNotStamped",
    }
    assert "access lasts at most 1h (AccessPolicy" in jit.get("too-long")["status"]["message"]
    assert "webhook did not admit it" in jit.get("unstamped")["status"]["message"]
    for name in reasons:
        assert jit.types(name) == ["request.created", "request.denied"]


async def test_pending_requests_expire_at_their_deadline(jit) -> None:
    jit.policy(pendingTimeout="10m")
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.clock.advance(dt.timedelta(minutes=9, seconds=59))
        jit.approve("fix-web-0", "nobody-yet", groups=())  # any change makes it look again
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.phase("fix-web-0") == "Pending"
        jit.clock.advance(dt.timedelta(seconds=1))
        obj = await jit.until_phase("fix-web-0", "Expired")
    assert condition(obj, "Approved")["reason"] == "PendingTimeout"
    assert jit.types("fix-web-0") == ["request.created", "request.approval", "request.expired"]


async def test_a_late_approval_does_not_count(jit) -> None:
    jit.policy(pendingTimeout="10m")
    async with jit.running():
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Pending")
        deadline = parse_time(obj["status"]["pendingDeadline"])
        # Stamped at the deadline (by a webhook whose clock runs ahead of the operator's).
        jit.approve("fix-web-0", "bob", at=deadline)
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.phase("fix-web-0") == "Pending"
        jit.clock.set(deadline)
        await jit.until_phase("fix-web-0", "Expired")
    approval = next(r for r in jit.records() if r["type"] == "request.approval")
    assert approval["context"]["ignored"] == "bob decided after the pending deadline"


async def test_break_glass_is_approved_at_once_and_flagged_for_review(jit) -> None:
    jit.policy(breakGlass={"groups": ["oncall"], "maxDuration": "30m"})
    async with jit.running():
        jit.request("emergency", groups=("oncall",), breakGlass=True, duration="20m")
        jit.request("not-allowed", groups=("developers",), breakGlass=True)
        obj = await jit.until_phase("emergency", "Approved")
        await jit.until_phase("not-allowed", "Denied")
        grant = jit.grant_of("emergency")
        await jit.until(lambda: any(r == "BreakGlass" for r, _ in jit.events("emergency")))
    assert condition(obj, "Approved")["reason"] == "BreakGlass"
    review = condition(obj, "ReviewRequired")
    assert review["status"] == "True"
    assert "INC-1234" in review["message"]
    assert grant["spec"]["breakGlass"] is True
    assert grant["spec"]["approvals"] == []
    window = parse_time(grant["spec"]["expiresAt"]) - parse_time(grant["spec"]["notBefore"])
    assert window == dt.timedelta(minutes=20)
    assert jit.types("emergency") == ["request.created", "request.approved", "grant.created"]
    approved = next(r for r in jit.records() if r["type"] == "request.approved")
    assert approved["context"]["breakGlass"] is True
    assert condition(jit.get("not-allowed"), "Approved")["reason"] == "BreakGlassNotAllowed"


async def test_cancel_honours_only_the_webhook_stamped_canceller(jit) -> None:
    jit.policy()
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.annotate("fix-web-0", {"jitgate.dev/cancel": "true"})  # no stamped -by: ignored
        jit.approve("fix-web-0", "mallory", groups=())  # seen together with the annotation
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.phase("fix-web-0") == "Pending"
        jit.annotate("fix-web-0", {"jitgate.dev/cancelled-by": "alice"})
        obj = await jit.until_phase("fix-web-0", "Cancelled")
    assert obj["status"]["message"] == "cancelled by alice"
    records = jit.records()
    assert [r["type"] for r in records] == [
        "request.created",
        "request.approval",
        "request.cancelled",
    ]
    assert records[-1]["actor"]["user"] == "alice"


async def test_policies_select_namespaces_by_label(jit) -> None:
    jit.policy(namespaces={"selector": {"matchLabels": {"tier": "prod"}}}, requiredApprovals=3)
    async with jit.running():
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Pending")
    assert obj["status"]["requiredApprovals"] == 3


async def test_a_namespaced_operator_serves_only_its_namespaces(jit) -> None:
    jit.policy(namespaces={"names": ["prod", "staging"]})
    async with jit.running(namespaces=("prod",)):
        jit.request("outside", namespace="staging")
        jit.request("inside")
        await jit.until_phase("inside", "Pending")
        await jit.settle()
    assert jit.api.read_object(AR, "staging", "outside").get("status") is None
    assert {r["request"] for r in jit.records()} == {"inside"}


async def test_the_default_dynamic_scanning_of_crds_and_namespaces_works(jit) -> None:
    jit.policy()
    async with jit.running(dynamic_scanning=True):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
    assert jit.types("fix-web-0") == ["request.created"]


async def test_an_invalid_policy_that_may_govern_the_namespace_denies_instead_of_falling_through(
    jit,
) -> None:
    # A lax policy would accept the request; a stricter one for the same namespace is broken
    # (defaultDuration over maxDuration slips past an API server without that CEL rule).
    jit.policy("lax")
    jit.policy("strict", requiredApprovals=3, maxDuration="10m", defaultDuration="1h")
    async with jit.running():
        jit.request("fix-web-0")
        obj = await jit.until_phase("fix-web-0", "Denied")
    assert condition(obj, "Approved")["reason"] == "PolicyInvalid"
    assert obj["status"]["message"].startswith("AccessPolicy strict is invalid (")
    assert jit.grants() == []
    assert [r["type"] for r in jit.records()] == ["request.created", "request.denied"]


async def test_a_request_soon_after_a_denial_needs_the_deniers_group(jit) -> None:
    jit.policy(approvers={"groups": ["sre", "dba"]}, afterDenial={"cooldown": "1h"})
    async with jit.running():
        jit.request("first")
        await jit.until_phase("first", "Pending")
        jit.approve("first", "bob", "Deny", comment="use the runbook")
        await jit.until_phase("first", "Denied")
        jit.request("again")
        obj = await jit.until_phase("again", "Pending")
        hold = obj["status"]["afterDenial"]
        assert (hold["request"], hold["deniedBy"], hold["approvers"]) == (
            "first",
            "bob",
            {"users": ["bob"], "groups": ["sre"]},
        )
        jit.approve("again", "erin", groups=("dba",))
        await jit.until(lambda: jit.get("again")["status"].get("observedApprovals") == 1)
        assert jit.phase("again") == "Pending"
        assert "after bob's denial: 0 of 1 approval" in jit.get("again")["status"]["message"]
        jit.approve("again", "dave", groups=("sre",))
        await jit.until_phase("again", "Approved")
