"""HA: two operators in one kopf peering; only the higher priority one acts, and the other
takes over when it leaves."""

from __future__ import annotations

from typing import Any

PEERING = "jitgate"


def peers(jit: Any) -> int:
    found = jit.find(PEERING, "kopf.dev/v1/clusterkopfpeerings")
    return len((found or {}).get("status") or {})


async def test_one_active_operator_and_a_standby_that_takes_over(jit) -> None:
    jit.api.create_object("kopf.dev/v1/clusterkopfpeerings", {"metadata": {"name": PEERING}})
    jit.policy()
    ha = {"standalone": False, "peering": PEERING}
    async with jit.running(**ha, priority=0, writer_id="op-b"):
        async with jit.running_in_thread(**ha, priority=10, writer_id="op-a"):
            await jit.until(lambda: peers(jit) == 2)
            await jit.settle()  # op-b has seen op-a's entry in the peering and paused
            jit.request("first")
            await jit.until_phase("first", "Pending")
            jit.approve("first", "bob")
            await jit.until_phase("first", "Approved")
        # op-a left the peering on its clean exit; op-b resumes and acts from now on.
        await jit.until(lambda: peers(jit) == 1)
        jit.request("second")
        await jit.until_phase("second", "Pending")
    active = [r["request"] for r in jit.records("op-a")]
    standby = [r["request"] for r in jit.records("op-b")]
    assert set(active) == {"first"}
    assert set(standby) == {"second"}
