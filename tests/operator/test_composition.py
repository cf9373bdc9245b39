"""Two AccessPolicies govern `prod`: the operator holds a request to both (DESIGN.md §2).

The attack from issue 12: a team policy with a shorter maxDuration (it used to be "the
strictest") names the developers as its approvers and break-glass users. Neither a
developer's break-glass nor a fellow developer's approval may grant access where
`production`, approved by SREs, also governs.
"""

from __future__ import annotations

TEAM = {
    "approvers": {"groups": ["developers"]},
    "maxDuration": "30m",
    "defaultDuration": "10m",
    "breakGlass": {"groups": ["developers"], "maxDuration": "30m"},
}


async def test_a_developer_cannot_break_the_glass_under_a_lax_second_policy(jit) -> None:
    jit.policy()  # production: SREs approve, no break-glass
    jit.policy("team-a", **TEAM)
    async with jit.running():
        jit.request("glass", breakGlass=True)
        obj = await jit.until_phase("glass", "Denied")
    assert obj["status"]["message"] == (
        "user alice may not use break-glass under AccessPolicy production"
    )
    assert jit.grants() == []
    denied = next(r for r in jit.records() if r["type"] == "request.denied")
    assert denied["context"]["cause"] == "BreakGlassNotAllowed"


async def test_a_fellow_developer_alone_cannot_approve_where_production_governs(jit) -> None:
    jit.policy()
    jit.policy("team-a", **TEAM)
    async with jit.running():
        jit.request("fix-web-0")
        pending = await jit.until_phase("fix-web-0", "Pending")
        assert pending["status"]["policies"] == [
            {"name": "production", "requiredApprovals": 1},
            {"name": "team-a", "requiredApprovals": 1},
        ]
        assert "policy" not in pending["status"]
        jit.approve("fix-web-0", "dave", groups=("developers",))
        await jit.until(lambda: jit.get("fix-web-0")["status"].get("observedApprovals") == 1)
        assert jit.phase("fix-web-0") == "Pending"
        assert jit.get("fix-web-0")["status"]["message"].startswith(
            "AccessPolicy production: 0 of 1 approval; AccessPolicy team-a: 1 of 1 approval (dave)"
        )
        assert jit.grants() == []
        jit.approve("fix-web-0", "bob")
        obj = await jit.until_phase("fix-web-0", "Approved")
    assert obj["status"]["message"] == (
        "approved by dave, bob under AccessPolicies production and team-a for 10m"
    )
    grant = jit.grant_of("fix-web-0")
    assert grant["spec"]["policies"] == ["production", "team-a"]
    assert "policy" not in grant["spec"]
    records = jit.records()
    approvals = [r for r in records if r["type"] == "request.approval"]
    assert [r["context"]["countedFor"] for r in approvals] == [["team-a"], ["production"]]
    created = next(r for r in records if r["type"] == "request.created")
    assert [p["name"] for p in created["context"]["policies"]] == ["production", "team-a"]
    approved = next(r for r in records if r["type"] == "request.approved")
    assert approved["context"]["policies"] == ["production", "team-a"]
