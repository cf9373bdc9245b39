"""Wake-ups for per-object daemons: now (something changed) or at a time of the injected clock.

One task polls the clock at a bounded interval for every object at once, so a daemon
sleeping until a grant's `expiresAt` costs nothing while it waits, a restarted operator
re-arms every deadline from the objects it lists, and a test that advances a ManualClock
is noticed within one interval.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

from jitgate.core.clock import Clock


class Scheduler:
    def __init__(self, clock: Clock, interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._events: dict[str, asyncio.Event] = {}
        self._due: dict[str, dt.datetime] = {}
        self._closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def close(self) -> None:
        """Wake every sleeper for good: the operator is stopping."""
        self._closing.set()

    def event(self, key: str) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def wake(self, key: str) -> None:
        self.event(key).set()

    def at(self, key: str, when: dt.datetime | None) -> None:
        """Wake `key` once the clock reaches `when` (None cancels); the earliest time wins."""
        if when is None:
            self._due.pop(key, None)
        elif when <= self._clock.now():
            self.wake(key)
        else:
            self._due[key] = when

    def forget(self, key: str) -> None:
        self._events.pop(key, None)
        self._due.pop(key, None)

    def tick(self) -> None:
        now = self._clock.now()
        for key, when in list(self._due.items()):
            if when <= now:
                del self._due[key]
                self.wake(key)

    async def run(self) -> None:
        """Poll the clock until cancelled."""
        while True:
            self.tick()
            await asyncio.sleep(self._interval)

    async def sleep(self, key: str, stopped: Awaitable[object], limit: float) -> None:
        """Until `key` is woken, `stopped` resolves, the scheduler closes or `limit` seconds
        pass, whichever comes first."""
        event = self.event(key)
        if event.is_set():
            event.clear()
            return
        waiters = {
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(stopped),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        event.clear()
