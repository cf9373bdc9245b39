"""Does a set of grants authorize an attempted action at a given time, and if not, why not?

Matching answers with the first mismatch instead of a bare no: `action_mismatch` says what
about the attempt a granted action does not allow, `window_mismatch` why a grant is not live.
A grant covers an attempt when neither finds one; the denial explanation is built on the
same answers, so what a denied user reads is what matching decided.

Matching reads a grant through `Granted`: a `GrantSpec` itself, or its `GrantTerms`, what the
grant index computes once per parsed spec so that a decision does not redo it per review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import GrantSpec, RequestedAction

G = TypeVar("G")

# What about an attempt one granted action does not allow, checked in this order:
# another verb or resource, another object name, another container than the one pinned,
# stdin or a TTY where a command is pinned (a session could run anything), another command.
# For scale, another replica count than the one pinned.
ActionMismatch = Literal[
    "verb", "resource", "name", "container", "interactive", "command", "replicas"
]
# Why a grant is not live: being deleted, ended, or its window not yet open.
WindowMismatch = Literal["revoked", "expired", "not yet valid"]


class Granted(Protocol):
    """What matching reads of a grant (`GrantSpec` and `GrantTerms` both are one)."""

    @property
    def user(self) -> str: ...

    @property
    def actions(self) -> Sequence[RequestedAction]: ...

    @property
    def not_before(self) -> dt.datetime: ...

    @property
    def expires_at(self) -> dt.datetime: ...

    @property
    def max_uses(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """A grant's spec with what matching reads of it, computed once when the spec is parsed.

    Its times are in UTC, the zone of the clock's `now` (`jitgate.core.clock.Clock`): two
    datetimes with the same tzinfo compare and subtract without asking either for its offset,
    where a parsed spec's pydantic time zone costs ~0.3 us per comparison. The same instants,
    so every comparison answers as it would on the spec.
    """

    spec: GrantSpec
    user: str
    actions: tuple[RequestedAction, ...]
    not_before: dt.datetime
    expires_at: dt.datetime
    max_uses: int | None

    @classmethod
    def of(cls, spec: GrantSpec) -> GrantTerms:
        return cls(
            spec,
            spec.user,
            tuple(spec.actions),
            spec.not_before.astimezone(dt.UTC),
            spec.expires_at.astimezone(dt.UTC),
            spec.max_uses,
        )


def window_mismatch(
    spec: Granted, now: dt.datetime, *, being_deleted: bool = False
) -> WindowMismatch | None:
    """Why the grant is not live at `now`, or None when `notBefore <= now < expiresAt`."""
    if being_deleted:
        return "revoked"
    if now >= spec.expires_at:
        return "expired"
    if now < spec.not_before:
        return "not yet valid"
    return None


def is_live(spec: Granted, now: dt.datetime, *, being_deleted: bool = False) -> bool:
    """Live means not being deleted and `notBefore <= now < expiresAt`."""
    return window_mismatch(spec, now, being_deleted=being_deleted) is None


def action_mismatch(granted: RequestedAction, attempted: AttemptedAction) -> ActionMismatch | None:
    """The first thing about the attempt the granted action does not allow, or None when it
    allows the attempt (namespace and user are checked elsewhere)."""
    if granted.verb != attempted.verb:
        return "verb"
    if granted.effective_resource != attempted.resource:
        return "resource"
    if granted.names and attempted.name not in granted.names:
        return "name"
    if granted.container is not None and granted.container != attempted.container:
        return "container"
    if granted.command is not None:
        # A pinned command must match exactly, and an interactive session could run anything.
        if attempted.interactive:
            return "interactive"
        if attempted.command != tuple(granted.command):
            return "command"
    if granted.replicas is not None and target_replicas(attempted) != granted.replicas:
        return "replicas"
    return None


def target_replicas(attempted: AttemptedAction) -> int | None:
    """The replica count a scale attempt sets (None when the review does not say)."""
    replicas = attempted.detail.get("replicas")
    new = replicas.get("new") if isinstance(replicas, dict) else None
    return new if isinstance(new, int) else None


def action_covers(granted: RequestedAction, attempted: AttemptedAction) -> bool:
    """Whether one granted action allows the attempt (namespace and user checked elsewhere)."""
    return action_mismatch(granted, attempted) is None


def grant_covers(spec: Granted, user: str, attempted: AttemptedAction) -> bool:
    if spec.user != user:
        return False
    for granted in spec.actions:  # noqa: SIM110 - a loop, not any(): every decision runs it
        if action_mismatch(granted, attempted) is None:
            return True
    return False


def find_authorizing(
    grants: Iterable[tuple[G, Granted, bool]],
    user: str,
    attempted: AttemptedAction,
    now: dt.datetime,
) -> G | None:
    """The first live grant (unlimited before limited, then by earliest expiry) covering the
    attempt, or None.

    Each item is (handle, spec, being_deleted); the handle is returned so callers can name
    the grant. Preferring the grant that expires first keeps longer grants for later; a grant
    with maxUses is used only when no unlimited one covers the attempt, so its uses are spent
    only where they are needed (and no API call is made to count them otherwise).
    """
    chosen: G | None = None
    best: tuple[bool, dt.datetime] | None = None
    for handle, spec, deleting in grants:
        if window_mismatch(spec, now, being_deleted=deleting) is not None:
            continue
        if not grant_covers(spec, user, attempted):
            continue
        rank = (spec.max_uses is not None, spec.expires_at)
        if best is None or rank < best:  # strictly: the first of equals is kept
            chosen, best = handle, rank
    return chosen
