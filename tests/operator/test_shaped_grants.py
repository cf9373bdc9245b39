"""Grants shaped like the work, end to end on the emulator with the injected clock: an extension
continues a live grant without a gap, a used-up grant ends, a scheduled start waits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from support import objects

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import Grant
from jitgate.core.clock import parse_time
from jitgate.core.grant_index import GrantIndex, IndexedGrant

GRANTS = "jitgate.dev/v1alpha1/grants"
EXEC = [{"verb": "exec", "names": ["web-0"], "container": "app"}]


def authorizes(grants: list[dict[str, Any]], when: dt.datetime) -> bool:
    """Whether an exec into web-0 by alice would be allowed at `when`, from these grants."""
    index = GrantIndex()
    index.replace_all(
        [
            IndexedGrant("prod", g["metadata"]["name"], "", Grant.model_validate(g).spec)
            for g in grants
        ]
    )
    attempt = AttemptedAction(
        verb="exec", namespace="prod", resource="pods", name="web-0", container="app"
    )
    return index.authorizing("alice", attempt, when) is not None


async def test_an_extension_approved_before_expiry_continues_without_a_gap(jit: Any) -> None:
    jit.policy(extensions={"requiredApprovals": 1, "maxTotalDuration": "45m"}, requiredApprovals=2)
    async with jit.running():
        start = jit.clock.now()
        jit.request("fix-web-0", duration="15m", actions=EXEC)
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        jit.approve("fix-web-0", "carol")
        await jit.until_phase("fix-web-0", "Approved")
        first = jit.grant_of("fix-web-0")

        jit.clock.advance(dt.timedelta(minutes=12))
        jit.request("fix-web-0-ext", duration="20m", actions=EXEC, extends={"name": "fix-web-0"})
        pending = await jit.until_phase("fix-web-0-ext", "Pending")
        # The extension bar is the policy's extensions.requiredApprovals; it waits for approval
        # no longer than the grant it extends is live.
        assert pending["status"]["requiredApprovals"] == 1
        assert parse_time(pending["status"]["pendingDeadline"]) == start + dt.timedelta(minutes=15)
        jit.clock.advance(dt.timedelta(minutes=2))
        jit.approve("fix-web-0-ext", "bob")
        await jit.until_phase("fix-web-0-ext", "Approved")
        second = jit.grant_of("fix-web-0-ext")
        both = [first, second]

        # Every second from the first grant's start to the extension's end is covered.
        moments = [start + dt.timedelta(seconds=s) for s in range(0, 35 * 60)]
        assert all(authorizes(both, at) for at in moments)
        assert not authorizes(both, start + dt.timedelta(minutes=35))

        jit.clock.advance(dt.timedelta(minutes=1))  # past the first grant's end
        await jit.until_phase("fix-web-0", "Expired")
        assert jit.find(second["metadata"]["name"], GRANTS) is not None
        assert jit.phase("fix-web-0-ext") == "Approved"
    spec = second["spec"]
    assert parse_time(spec["notBefore"]) == start + dt.timedelta(minutes=14)
    assert parse_time(spec["expiresAt"]) == start + dt.timedelta(minutes=35)
    assert parse_time(spec["windowStart"]) == start


async def test_an_extension_is_capped_from_the_first_grants_start(jit: Any) -> None:
    jit.policy(maxDuration="30m")
    async with jit.running():
        start = jit.clock.now()
        jit.request("fix-web-0", duration="20m", actions=EXEC)
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
        jit.request("too-long", duration="15m", actions=EXEC, extends={"name": "fix-web-0"})
        denied = await jit.until_phase("too-long", "Denied")
    assert denied["status"]["message"] == (
        "extending by 15m would make access last 35m from "
        f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}, more than the maxDuration 30m "
        "(AccessPolicy production); ask for --by 10m or less"
    )


async def test_an_extension_still_pending_when_the_grant_ends_expires_with_it(jit: Any) -> None:
    jit.policy(requiredApprovals=1)
    async with jit.running():
        start = jit.clock.now()
        jit.request("fix-web-0", duration="15m", actions=EXEC)
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
        jit.request("late", duration="15m", actions=EXEC, extends={"name": "fix-web-0"})
        pending = await jit.until_phase("late", "Pending")
        jit.clock.advance(dt.timedelta(minutes=15))
        # Its pending deadline was the grant's end: it expires unanswered with it.
        late = await jit.until_phase("late", "Expired")
        await jit.until_phase("fix-web-0", "Expired")
    assert parse_time(pending["status"]["pendingDeadline"]) == start + dt.timedelta(minutes=15)
    assert late["status"].get("grant") is None


async def test_a_used_up_grant_ends_and_says_why(jit: Any) -> None:
    jit.policy()
    async with jit.running():
        jit.request("fix-web-0", duration="15m", actions=EXEC, maxUses=1)
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
        grant = jit.grant_of("fix-web-0")
        assert grant["spec"]["maxUses"] == 1
        name = grant["metadata"]["name"]
        # What the webhook writes when it counts the one use.
        jit.api.patch_object(GRANTS, "prod", name, {"status": {"uses": 1}}, subresource="status")
        obj = await jit.until_phase("fix-web-0", "Expired")
        await jit.until(lambda: jit.find(name, GRANTS) is None)
    assert obj["status"]["message"] == f"grant {name} was used up (1 of 1 use)"
    granted = next(c for c in obj["status"]["conditions"] if c["type"] == "Granted")
    assert granted["reason"] == "GrantUsedUp"
    assert jit.types()[-2:] == ["grant.exhausted", "request.expired"]
    exhausted = next(r for r in jit.records() if r["type"] == "grant.exhausted")
    assert (exhausted["context"]["uses"], exhausted["context"]["maxUses"]) == (1, 1)


async def test_a_scheduled_grant_starts_at_its_start_not_at_approval(jit: Any) -> None:
    jit.policy()
    async with jit.running():
        start = jit.clock.now() + dt.timedelta(hours=2)
        jit.request(
            "later", duration="15m", actions=EXEC, startAt=start.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        pending = await jit.until_phase("later", "Pending")
        jit.approve("later", "bob")
        await jit.until_phase("later", "Approved")
        grant = jit.grant_of("later")
    assert parse_time(pending["status"]["pendingDeadline"]) == start + dt.timedelta(hours=1)
    assert parse_time(grant["spec"]["notBefore"]) == start
    assert parse_time(grant["spec"]["expiresAt"]) == start + dt.timedelta(minutes=15)
    assert not authorizes([grant], start - dt.timedelta(seconds=1))
    assert authorizes([grant], start)
    assert grant["spec"]["reason"] == objects.REASON
