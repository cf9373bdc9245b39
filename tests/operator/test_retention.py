"""Finished requests are deleted after the retention period; the audit log keeps them."""

from __future__ import annotations

import datetime as dt


async def test_finished_requests_are_deleted_after_retention(jit) -> None:
    jit.policy(maxDuration="1h", pendingTimeout="1h")
    async with jit.running(retention=dt.timedelta(days=7)):
        jit.request("denied", duration="2h")
        jit.request("pending")
        await jit.until_phase("denied", "Denied")
        await jit.until_phase("pending", "Pending")
        jit.clock.advance(dt.timedelta(hours=1))
        await jit.until_phase("pending", "Expired")
        jit.clock.advance(dt.timedelta(days=6, hours=22, minutes=59))
        await jit.settle()
        assert jit.find("denied") is not None
        jit.clock.advance(dt.timedelta(minutes=1))
        await jit.until(lambda: jit.find("denied") is None)
        # The other one finished an hour later, so it is kept an hour longer.
        assert jit.find("pending") is not None
        jit.clock.advance(dt.timedelta(hours=1))
        await jit.until(lambda: jit.find("pending") is None)
    assert jit.types("denied") == ["request.created", "request.denied"]
    assert jit.types("pending") == ["request.created", "request.expired"]


async def test_retention_counts_from_when_the_grant_ended(jit) -> None:
    jit.policy()
    async with jit.running(retention=dt.timedelta(hours=1)):
        jit.request("live", duration="1h")
        await jit.until_phase("live", "Pending")
        jit.approve("live", "bob")
        await jit.until_phase("live", "Approved")
        jit.clock.advance(dt.timedelta(hours=1))
        await jit.until_phase("live", "Expired")
        jit.clock.advance(dt.timedelta(minutes=59))
        await jit.settle()
        assert jit.find("live") is not None
        jit.clock.advance(dt.timedelta(minutes=1))
        await jit.until(lambda: jit.find("live") is None)
