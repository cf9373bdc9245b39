"""Counting the uses of a limited grant (`maxUses`) atomically across webhook replicas.

Only a grant with `spec.maxUses` costs an API call on the decision path; every other grant is
decided from the index alone. The count lives on the Grant (`status.uses`) and the API server
is the arbiter: a fresh read, then an update of the status subresource carrying the
resourceVersion it read. Two replicas that read the same count race; the API server accepts
one update and answers the other 409 Conflict, which reads again and finds the count moved on.
The loop is bounded (`MAX_ATTEMPTS`, one `timeout` for all of it): a count that cannot be
made denies the action (fail closed), and so does one that finds the grant used up.

Each write also names the review it counts (`status.lastUse`, the admission uid). A write whose
answer is lost (a timeout, or the client retrying a PUT that had landed, which then conflicts)
is recognised on the next read: the count moved on and names this review, so it was counted.
A use may be wasted when that cannot be told, never allowed twice.

A dry run reads the count and writes nothing: it is decided the same way, and uses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 16  # reads and writes; each lost race costs one
DEFAULT_TIMEOUT: Final = 3.0  # seconds for the whole count, inside the webhook's 5 s timeout


@dataclass(frozen=True)
class Counted:
    """The use was counted (or, for a dry run, would be): it is use `number` of `limit`."""

    number: int
    limit: int


@dataclass(frozen=True)
class UsedUp:
    """Every use the grant had is spent (or the grant is gone)."""

    used: int
    limit: int


@dataclass(frozen=True)
class NotCounted:
    """No count could be made (the API server failed, answered too slowly or too often 409)."""

    why: str


Outcome = Counted | UsedUp | NotCounted


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class Gone(Exception):
    """The object no longer exists (HTTP 404)."""


@dataclass(frozen=True)
class GrantStore:
    """The two calls a count makes, blocking (run in a thread): read one Grant, and replace
    its status with the resourceVersion it carries as the precondition; each raises
    `Conflict` or `Gone` as the API server answers, and takes a timeout in seconds."""

    read: Callable[[str, str, float], Mapping[str, Any]]
    replace_status: Callable[[str, str, Mapping[str, Any], float], object]


def count_use(
    store: GrantStore,
    namespace: str,
    name: str,
    review: str,
    *,
    dry_run: bool,
    timeout: float = DEFAULT_TIMEOUT,
    monotonic: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Count one use of Grant `namespace/name` for the admission review `review` (blocking)."""
    deadline = monotonic() + timeout
    unsure = False  # a write of ours may have landed without our hearing it
    for _ in range(MAX_ATTEMPTS):
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        try:
            grant = store.read(namespace, name, remaining)
        except Gone:
            return UsedUp(0, 0)
        status = grant.get("status") or {}
        limit = (grant.get("spec") or {}).get("maxUses")
        used = status.get("uses") or 0
        if not isinstance(limit, int) or not isinstance(used, int):
            return NotCounted(f"grant {name} has no readable use count")
        if not dry_run and used and status.get("lastUse") == review:
            return Counted(used, limit)  # our write landed; its answer was lost
        if (grant.get("metadata") or {}).get("deletionTimestamp") or used >= limit:
            return UsedUp(used, limit)
        if dry_run:
            return Counted(used + 1, limit)
        counted = {**grant, "status": {**status, "uses": used + 1, "lastUse": review}}
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        try:
            store.replace_status(namespace, name, counted, remaining)
        except Conflict:
            continue  # another replica counted first, or our retried write had landed
        except Gone:
            return UsedUp(used, limit)
        except Exception as error:  # no answer: read again to learn whether it landed
            logger.info("Counting a use of grant %s/%s: %s; reading again", namespace, name, error)
            unsure = True
            continue
        return Counted(used + 1, limit)
    why = "took too long" if not unsure else "could not be confirmed"
    return NotCounted(f"counting a use of grant {name} {why} ({timeout:g}s)")


class UseCounter:
    """`count_use` off the event loop, with failures logged and turned into `NotCounted`."""

    def __init__(self, store: GrantStore, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._store = store
        self._timeout = timeout

    async def count(self, namespace: str, name: str, review: str, *, dry_run: bool) -> Outcome:
        try:
            return await asyncio.to_thread(
                count_use,
                self._store,
                namespace,
                name,
                review,
                dry_run=dry_run,
                timeout=self._timeout,
            )
        except Exception as error:  # the API server failed: the action is denied
            logger.warning("Counting a use of grant %s/%s failed: %s", namespace, name, error)
            return NotCounted(f"counting a use of grant {name} failed: {error}")
