"""Counting the approvals of a Pending request: who counted, who did not and why.

A request governed by several AccessPolicies is approved when every policy's count is met
(`jitgate.core.policy` says why one approval counts towards each policy naming its author).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from jitgate.core.api import Approval


@dataclass(frozen=True)
class Ignored:
    index: int
    user: str
    why: str


@dataclass(frozen=True)
class Requirement:
    """One governing policy's share of the decision: how many of its approvers must approve.
    With a `title`, a condition other than a policy's (an earlier denial's hold)."""

    policy: str
    required: int
    is_approver: Callable[[str, Sequence[str]], bool]
    title: str | None = None


@dataclass(frozen=True)
class Count:
    """How far one governing policy's requirement is met."""

    policy: str
    required: int
    approved_by: tuple[str, ...]
    title: str | None = None

    @property
    def met(self) -> bool:
        return len(self.approved_by) >= self.required

    @property
    def label(self) -> str:
        return self.title or f"AccessPolicy {self.policy}"


@dataclass(frozen=True)
class Tally:
    """The outcome of the approvals so far, and which entries did not count and why."""

    outcome: Literal["Pending", "Approved", "Denied"]
    approved_by: tuple[str, ...]  # whoever counted towards at least one policy, in order
    denied_by: str | None
    ignored: tuple[Ignored, ...]
    counts: tuple[Count, ...]  # per governing policy, in the order of the requirements


def tally(
    approvals: Sequence[Approval],
    *,
    requester: str,
    requirements: Sequence[Requirement],
    allow_self_approval: bool,
    spec_digest: str | None = None,
    deadline: dt.datetime | None = None,
) -> Tally:
    """Count distinct eligible approvals in order until every requirement is met; the first
    eligible Deny (by an approver of any governing policy, the requester included) denies.

    With `spec_digest`, a decision bound to any other spec does not count; with `deadline`,
    neither does one stamped at or after it (it came too late, whenever it is noticed).
    Without requirements nothing is ever approved.
    """
    decided: set[str] = set()
    approved_by: list[str] = []
    ignored: list[Ignored] = []
    counted: list[list[str]] = [[] for _ in requirements]

    def counts() -> tuple[Count, ...]:
        return tuple(
            Count(r.policy, r.required, tuple(users), r.title)
            for r, users in zip(requirements, counted, strict=True)
        )

    for index, approval in enumerate(approvals):
        user = approval.user or ""
        why = None
        if not user:
            why = "no authenticated approver"
        elif spec_digest is not None and approval.spec_digest != spec_digest:
            why = f"{user} decided on a different spec than the request's"
        elif deadline is not None and approval.time is not None and approval.time >= deadline:
            why = f"{user} decided after the pending deadline"
        elif user in decided:
            why = f"{user} already decided"
        elif user == requester and not allow_self_approval and approval.decision != "Deny":
            # Only an approval is a self-approval: a requester's Deny (one made while every
            # policy then governing allowed self-approval) still denies. Ignoring it would let
            # a stricter policy, once added, turn a denied request into an approved one.
            why = f"{user} requested it and self-approval is not allowed"
        under = [i for i, r in enumerate(requirements) if r.is_approver(user, approval.groups)]
        if why is None and not under:
            why = f"{user} is not an approver under any governing policy"
        if why is not None:
            ignored.append(Ignored(index, user, why))
            continue
        decided.add(user)
        if approval.decision == "Deny":
            return Tally("Denied", tuple(approved_by), user, tuple(ignored), counts())
        approved_by.append(user)
        for i in under:
            counted[i].append(user)
        if requirements and all(count.met for count in counts()):
            return Tally("Approved", tuple(approved_by), None, tuple(ignored), counts())
    if requirements and all(count.met for count in counts()):
        # Every requirement was met without a person (autoApprove rules: required 0).
        return Tally("Approved", tuple(approved_by), None, tuple(ignored), counts())
    return Tally("Pending", tuple(approved_by), None, tuple(ignored), counts())


def decisive_index(approvals: Sequence[Approval], result: Tally) -> int | None:
    """The entry that decided the tally: the counted Deny, or the last counted approval (None
    when rules approved without anyone)."""
    user = result.denied_by if result.outcome == "Denied" else None
    if result.outcome == "Approved" and result.approved_by:
        user = result.approved_by[-1]
    if user is None:
        return None
    ignored = {item.index for item in result.ignored}
    return next(
        i for i, a in enumerate(approvals) if a.user == user and i not in ignored
    )  # pragma: no branch - tally counted it, so it is there


def pending_expired(deadline: dt.datetime | None, now: dt.datetime) -> bool:
    return deadline is not None and now >= deadline
