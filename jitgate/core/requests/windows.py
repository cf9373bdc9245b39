"""Schedules in the state machine: the approvals each policy needs now, what to tell the
requester, when to look again, and how long a grant approved now may last.

`jitgate.core.policy` says how windows compose (every schedule must be satisfied); this
module applies that to a request at the operator's `now`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from jitgate.core.policy import Governing, Window
from jitgate.core.requests.tally import Count


def by_name(governing: Governing, now: dt.datetime) -> Mapping[str, Window]:
    return {window.name: window for window in governing.windows(now)}


def required_now(windows: Mapping[str, Window], name: str, base: int) -> int:
    """What policy `name` needs now: `base` inside its window (or without one), its
    outsideWindow approvals outside it."""
    window = windows.get(name)
    return base if window is None else window.required(base)


def outside_note(windows: Mapping[str, Window], name: str) -> str:
    """` (outside its window Mon-Fri 09:00-17:00 Europe/Berlin; it opens next at …)` for a
    policy that needs more approvals now because its window is closed, else ``."""
    window = windows.get(name)
    if window is None or window.state.open or window.approvals_outside is None:
        return ""
    return f" ({window.describe()}; {window.state.next_opening()})"


def wake_at(windows: Mapping[str, Window], deadline: dt.datetime | None) -> dt.datetime | None:
    """The deadline, or sooner when a window opens or closes first (approvals needed change)."""
    changes = [w.state.changes_at for w in windows.values() if w.state.changes_at is not None]
    candidates = [*changes, *([deadline] if deadline is not None else [])]
    return min(candidates) if candidates else None


def outside_met(windows: Mapping[str, Window], counts: Sequence[Count]) -> tuple[str, ...]:
    """The RequireApprovals policies whose outside-window count the approvals meet: the grant
    authorizes outside their windows too."""
    met = []
    for count in counts:
        window = windows.get(count.policy)
        needed = window.approvals_outside if window is not None else None
        if needed is not None and len(count.approved_by) >= needed:
            met.append(count.policy)
    return tuple(met)


def grant_end(
    windows: Mapping[str, Window], waived: Sequence[str], start: dt.datetime
) -> tuple[dt.datetime, str] | None:
    """When a grant starting at `start` must end because a window it depends on closes (the
    earliest), and which policy's; None when no window limits it."""
    limits = [
        (w.state.changes_at, w.name)
        for w in windows.values()
        if w.state.open and w.state.changes_at is not None and w.name not in waived
    ]
    return min(limits) if limits else None
