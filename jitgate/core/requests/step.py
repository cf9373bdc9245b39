"""What a decision looks at (`World`) and what it returns (`Step`), and the status it writes.

A step's `status` is an `AccessRequestStatus` holding only the fields to change: the adapter
writes `status.to_patch()` as a JSON merge patch. A new phase is set only through
`to_phase()`, which checks the transition table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from jitgate.core.api import (
    AccessPolicy,
    AccessRequestStatus,
    Condition,
    Grant,
    RequestPhase,
    Subjects,
)
from jitgate.core.events import Record
from jitgate.core.policy import Governing, Namespace, UnreadablePolicy
from jitgate.core.requests.after_denial import Denial
from jitgate.core.requests.transitions import transition

if TYPE_CHECKING:  # extensions plans grants, which build steps: no import at run time
    from jitgate.core.extensions import Extended

NotifyKind = Literal["created", "approved", "denied", "expired"]

# Condition types on AccessRequests: `Approved` is Unknown while Pending, `Granted` is True
# while the grant is live, `ReviewRequired` flags break-glass grants.
APPROVED = "Approved"
GRANTED = "Granted"
REVIEW_REQUIRED = "ReviewRequired"


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event on the object."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class RevokeGrant:
    """Revoke the request's grant; `gone` is the request's status if the grant is gone."""

    grant: str
    by: str | None
    reason: str
    gone: AccessRequestStatus


@dataclass(frozen=True)
class Step:
    """One transition: records first, then the grant, the status, Events and notification."""

    records: tuple[Record, ...] = ()
    status: AccessRequestStatus | None = None  # the fields to change
    grant: Grant | None = None  # to issue; `issued()` completes the step with it
    revoke: RevokeGrant | None = None
    notices: tuple[Notice, ...] = ()
    notify: NotifyKind | None = None
    # Who must hear of the notification at once, by name on every channel (break-glass: every
    # approver of the governing policies).
    alert: Subjects | None = None
    delete: bool = False  # retention is over
    wake_at: dt.datetime | None = None  # look again then, even if nothing changes
    approved_after: dt.timedelta | None = None

    @property
    def acts(self) -> bool:
        return bool(
            self.records or self.status is not None or self.grant or self.revoke or self.delete
        )


@dataclass(frozen=True)
class World:
    """Everything besides the request that a decision depends on."""

    now: dt.datetime
    policies: Sequence[AccessPolicy]
    namespace: Namespace
    retention: dt.timedelta
    # AccessPolicies in the cluster that do not validate: what they protect is unknown.
    unreadable: Sequence[UnreadablePolicy] = ()
    # Approvers' denials of requests in this namespace (`after_denial`: anti-shopping).
    denials: Sequence[Denial] = ()
    # For an extension (`spec.extends`): the request it names and that request's grant.
    extended: Extended | None = None

    def broken_policy(self) -> UnreadablePolicy | None:
        """An invalid policy that might govern this namespace, so nothing here is decided."""
        return next((p for p in self.unreadable if p.may_cover(self.namespace)), None)

    def policy(self, name: str | None) -> AccessPolicy | None:
        return next((p for p in self.policies if name and p.metadata.name == name), None)

    def governing(self, names: Sequence[str]) -> Governing | None:
        """The named policies composed, or None when any of them no longer exists: a
        request cannot be checked against a policy that is gone."""
        found = [self.policy(name) for name in names]
        if any(policy is None for policy in found):
            return None
        return Governing.of(policy for policy in found if policy is not None)

    def missing(self, names: Sequence[str]) -> list[str]:
        """Which of the named policies no longer exist."""
        return [name for name in names if self.policy(name) is None]


def to_phase(
    current: RequestPhase | None, target: RequestPhase, **fields: Any
) -> AccessRequestStatus:
    """The status moving a request from `current` to `target`, with `fields` changed too."""
    return AccessRequestStatus(phase=transition(current, target), **fields)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[Condition]:
    """Replace or add one condition, keeping its transition time if its status is unchanged."""
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_, status=status, reason=reason, message=message, last_transition_time=since
    )
    return [new if c.type == type_ else c for c in conditions] if old else [*conditions, new]
