"""Does a set of grants authorize an attempted action at a given time?"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TypeVar

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import GrantSpec, RequestedAction

G = TypeVar("G")


def is_live(spec: GrantSpec, now: dt.datetime, *, being_deleted: bool = False) -> bool:
    """Live means not being deleted and `notBefore <= now < expiresAt`."""
    return not being_deleted and spec.not_before <= now < spec.expires_at


def action_covers(granted: RequestedAction, attempted: AttemptedAction) -> bool:
    """Whether one granted action allows the attempt (namespace and user checked elsewhere)."""
    if granted.verb != attempted.verb or granted.effective_resource != attempted.resource:
        return False
    if granted.names and attempted.name not in granted.names:
        return False
    if granted.container is not None and granted.container != attempted.container:
        return False
    # A pinned command must match exactly, and an interactive session could run anything.
    return granted.command is None or (
        not attempted.interactive and attempted.command == tuple(granted.command)
    )


def grant_covers(spec: GrantSpec, user: str, attempted: AttemptedAction) -> bool:
    return spec.user == user and any(action_covers(a, attempted) for a in spec.actions)


def find_authorizing(
    grants: Iterable[tuple[G, GrantSpec, bool]],
    user: str,
    attempted: AttemptedAction,
    now: dt.datetime,
) -> G | None:
    """The first live grant (by earliest expiry) covering the attempt, or None.

    Each item is (handle, spec, being_deleted); the handle is returned so callers can name
    the grant. Preferring the grant that expires first keeps longer grants for later.
    """
    candidates = [
        (spec.expires_at, index, handle)
        for index, (handle, spec, deleting) in enumerate(grants)
        if is_live(spec, now, being_deleted=deleting) and grant_covers(spec, user, attempted)
    ]
    return min(candidates, key=lambda item: (item[0], item[1]))[2] if candidates else None
