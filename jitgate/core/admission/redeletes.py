"""A DELETE of an object already being deleted that changes nothing: not a protected action.

The API server validates one DELETE several times: as it marks the object for deletion
(`deletionTimestamp`), and again, on the marked object, as it removes it. The first call is
the decision; the later ones, and any other DELETE of an object already marked, can change
only two things (the API server's `BeforeDelete` and its garbage-collection finalizers):

* the grace period, when the DELETE asks for a shorter one than the pending deletion's
  (`kubectl delete --grace-period=0 --force` on a terminating pod): the pod's processes are
  killed sooner and it leaves the API at once, so a StatefulSet may start its successor while
  it still runs;
* how its dependents are collected, when the DELETE names a propagation policy (or
  `orphanDependents`) other than the one its finalizers already carry (`orphan`,
  `foregroundDeletion`, or neither for background): orphaned dependents would be deleted, or
  deleted now instead of once the object is gone.

Anything else leaves the object going away on the schedule its first DELETE, already decided,
set; so it is not decided or recorded again (`changes_nothing`), and the chart's CEL
matchCondition `not-a-pending-deletion` keeps the API server from calling the webhook for it.
docs/threat-model.md row 2.17 says why this is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True)
class PendingDeletion:
    """What the object being deleted already carries (`metadata` of the review's oldObject)."""

    grace_period: int | None  # deletionGracePeriodSeconds
    finalizers: tuple[str, ...]


@dataclass(frozen=True)
class DeleteRequest:
    """The review's DeleteOptions, as far as they can change a pending deletion."""

    grace_period: int | None = None  # gracePeriodSeconds
    propagation_policy: str | None = None
    orphan_dependents: bool | None = None


def _current_policy(finalizers: tuple[str, ...]) -> str:
    if ORPHAN in finalizers:
        return "Orphan"
    if FOREGROUND in finalizers:
        return "Foreground"
    return "Background"


def changes_nothing(pending: PendingDeletion, request: DeleteRequest) -> bool:
    """Whether this DELETE of an object already marked for deletion leaves its deletion as
    it is: no shorter grace period, no other collection of its dependents."""
    if (
        request.grace_period is not None
        and pending.grace_period is not None
        and request.grace_period < pending.grace_period
    ):
        return False
    if request.orphan_dependents is not None:
        return False
    policy = request.propagation_policy
    return policy is None or policy == _current_policy(pending.finalizers)
