"""A finished request (Denied, Expired, Revoked or Cancelled): a late break-glass review is
still recorded, and the request is deleted once the retention period has passed."""

from __future__ import annotations

import datetime as dt

from jitgate.core.api import AccessRequest
from jitgate.core.requests.approved import review
from jitgate.core.requests.step import REVIEW_REQUIRED, Step, World


def finished_at(request: AccessRequest) -> dt.datetime | None:
    # A later review is not the end of the request, so it does not restart the retention.
    times = [
        c.last_transition_time
        for c in request.status.conditions
        if c.last_transition_time and c.type != REVIEW_REQUIRED
    ]
    return max(times, default=None) or request.metadata.creation_timestamp


def finished(request: AccessRequest, world: World) -> Step:
    reviewed = review(request, world)
    if reviewed is not None:
        return reviewed
    end = finished_at(request)
    if end is None:
        return Step()
    due = end + world.retention
    if world.now >= due:
        return Step(delete=True)
    return Step(wake_at=due)
