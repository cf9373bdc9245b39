"""Live read on a cache miss: an action right after its approval is never falsely denied.

The grant index follows the API server through a watch, which lags by milliseconds (more
under load). A caller the index has no live grant for may be acting on a Grant created a
moment ago, so before such a denial the webhook reads that caller's Grants in that namespace
from the API server once (selected by their `jitgate.dev/user-sha256` label, so hundreds of
other users' Grants do not slow the read) and decides again from what it read
(`LiveGrants.in_namespace`). A Grant without that label (issued before the operator set it) is
not found by the read: its denial stands until the watch delivers it.

Bounded so that a flood of unauthorised attempts cannot turn into a flood on the API server:
at most `MAX_GRANTS` Grants (read in pages), a `timeout` for the whole read, at most
`max_in_flight` reads at once (one caller's namespace already being read shares that read),
and token
buckets: `rate` reads per second in all, and `per_user_rate` for each caller, so that one
identity flooding unauthorised attempts spends its own bucket and cannot starve a user who acts
the moment their grant is approved. A read that is not made, fails or times out leaves the
denial as it was: the webhook fails closed. What was read is used for that one decision only
and never written into the cache, so a read can never resurrect a Grant the watch has since
deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from jitgate.webhook.cache import to_indexed_grant

from jitgate.core.grant_index import GrantIndex, IndexedGrant

logger = logging.getLogger(__name__)

MAX_GRANTS: Final = 10_000  # one user's in a namespace; more are read that far only
DEFAULT_RATE: Final = 50.0  # reads per second, across all callers
# One caller may spend 20 a second (as much as all callers could before the per-caller
# buckets): a user acting on many fresh grants at once (a script, the race benchmark) keeps
# its reads, and a flooding identity still leaves most of the shared bucket to everyone else.
DEFAULT_PER_USER_RATE: Final = 20.0
MAX_TRACKED_USERS: Final = 4096  # per-caller buckets kept; the least recently used go first
DEFAULT_TIMEOUT: Final = 1.0  # seconds; well inside the API server's webhook timeout
DEFAULT_MAX_IN_FLIGHT: Final = 4

# Blocking: (namespace, user, limit, timeout) -> up to `limit` of that user's Grant objects
# in the namespace.
GrantReader = Callable[[str, str, int, float], Sequence[Mapping[str, Any]]]


class _TokenBucket:
    """`rate` tokens a second, holding at most `rate` (a burst of one second's worth)."""

    __slots__ = ("_rate", "_refilled", "_tokens")

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._refilled = now

    def has_token(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        return self._tokens >= 1

    def take(self) -> None:
        self._tokens -= 1


class LiveGrants:
    """Reads one user's Grants in a namespace from the API server, bounded and rate-limited."""

    def __init__(
        self,
        read: GrantReader,
        *,
        rate: float = DEFAULT_RATE,
        per_user_rate: float = DEFAULT_PER_USER_RATE,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._per_user_rate = per_user_rate
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._monotonic = monotonic
        self._bucket = _TokenBucket(rate, monotonic())
        self._user_buckets: OrderedDict[str, _TokenBucket] = OrderedDict()
        self._reading: dict[tuple[str, str], asyncio.Future[GrantIndex | None]] = {}

    async def in_namespace(self, namespace: str, user: str) -> GrantIndex | None:
        """`user`'s Grants in `namespace` as the API server has them now, or None when no
        read was made (rate limit, too many reads at once) or it failed. `user` is the caller
        whose denial the read is for; it pays for the read from its own bucket."""
        key = (namespace, user)
        shared = self._reading.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        if len(self._reading) >= self._max_in_flight or not self._take_token(user):
            return None
        future: asyncio.Future[GrantIndex | None] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            index = await self._fetch(namespace, user)
            future.set_result(index)
            return index
        finally:
            del self._reading[key]
            if not future.done():
                future.set_result(None)

    def _take_token(self, user: str) -> bool:
        now = self._monotonic()
        mine = self._user_buckets.pop(user, None) or _TokenBucket(self._per_user_rate, now)
        self._user_buckets[user] = mine  # now the most recently used
        if len(self._user_buckets) > MAX_TRACKED_USERS:
            self._user_buckets.popitem(last=False)
        if not (mine.has_token(now) and self._bucket.has_token(now)):
            return False
        mine.take()
        self._bucket.take()
        return True

    async def _fetch(self, namespace: str, user: str) -> GrantIndex | None:
        try:
            objects = await asyncio.wait_for(
                asyncio.to_thread(self._read, namespace, user, MAX_GRANTS, self._timeout),
                self._timeout,
            )
        except Exception as error:  # a failed read leaves the denial as it was
            logger.warning("Reading %s's Grants in %s live failed: %s", user, namespace, error)
            return None
        grants: list[IndexedGrant] = [g for g in map(to_indexed_grant, objects) if g]
        index = GrantIndex()
        index.replace_all(grants)
        return index
