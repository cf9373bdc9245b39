"""The fixed time every test tier starts from (with `jitgate.core.clock.ManualClock` where
time must move), and `ManualSleep`, the sleep of a background loop that a test releases.

Tests that compare rendered timestamps write them out literally (`2026-11-21T10:00:00Z`), so
a reader sees what a user would; everything else derives its times from `NOW`.
"""

from __future__ import annotations

import asyncio
import datetime as dt

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)  # a Saturday, 10:00 UTC


class ManualSleep:
    """The `sleep` of one loop that waits between rounds (the session recorder's ticker, the
    checkpointer's polls): it returns only when the test calls `tick()`.

    With a `ManualClock` the test decides when each round runs and what time it sees:
    advance the clock, then `await sleep.tick()`, which returns once the loop sleeps again,
    its round over, and raises TimeoutError if the loop never sleeps (again).
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._asleep = asyncio.Event()
        self._wake = asyncio.Event()
        self._timeout = timeout

    async def __call__(self, _seconds: float) -> None:
        self._asleep.set()
        await self._wake.wait()
        self._wake.clear()

    async def tick(self) -> None:
        """Run one round of the loop: wake it, return once it sleeps again."""
        async with asyncio.timeout(self._timeout):
            await self._asleep.wait()  # the first time: until the loop, just started, sleeps
            self._asleep.clear()
            self._wake.set()
            await self._asleep.wait()
