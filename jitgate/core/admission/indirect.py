"""Actions reached through another object: what an edit amounts to when an exempt controller
does the work, or when it switches protection off.

* An autoscaler (HPA) whose target is protected is a scale of that target: the HPA
  controller moves the target's replicas into `[minReplicas, maxReplicas]` at once, and
  anywhere inside that range as its metrics say later.
* Deleting a namespace is a delete of every protected object in it: the namespace controller
  removes them all.
* Deleting an owner that is not itself protected (a Deployment when only pods are) with
  background or foreground propagation is a delete of each protected object the garbage
  collector would remove with it: its dependents, and theirs.
* A CronJob history limit tightened (`edits.history_cuts`) is a delete of each finished Job
  the CronJob controller then removes: the oldest beyond the new limit.
* A label change that makes a policy stop covering a namespace is `unprotect` of it.

The webhook reads what these rules need (the target's replicas, the namespace's objects);
the rules themselves do no I/O. Each action says how it was reached in `detail["via"]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.edits import HistoryCut
from jitgate.core.api import AccessPolicy
from jitgate.core.policy import Namespace, UnreadablePolicy, covers_namespace, is_exempt
from jitgate.core.vocabulary import CRONJOBS, JOBS, NAMESPACES, UNPROTECT_VERB

AUTOSCALERS = "horizontalpodautoscalers.autoscaling"
# Kinds that stand between an owner and the pods it runs (Deployment → ReplicaSet → Pod,
# CronJob → Job → Pod): listed with the protected resources to follow owner chains.
INTERMEDIATE_OWNERS: tuple[str, ...] = ("replicasets.apps", "jobs.batch")


@dataclass(frozen=True)
class Listed:
    """One object as a metadata-only list shows it."""

    name: str
    uid: str
    owners: tuple[str, ...] = ()  # the uids its ownerReferences name


@dataclass(frozen=True)
class HistoryJob:
    """One Job as the CronJob controller reads it to trim a CronJob's history."""

    name: str
    controller: str | None  # the name its controller ownerReference names, if any
    succeeded: bool | None  # True: Complete, False: Failed, None: not finished
    started: datetime | None  # status.startTime
    start_readable: bool = True  # False: a startTime that could not be read


_NEVER = datetime.min.replace(tzinfo=UTC)


def autoscaler_scale(
    namespace: str,
    autoscaler: str,
    resource: str,
    name: str,
    *,
    current: int,
    low: int,
    high: int,
) -> AttemptedAction | None:
    """The scale an autoscaler with bounds `low..high` amounts to on a target running
    `current` replicas, or None when it can never move the target.

    It cannot when the target runs no replicas (the HPA controller leaves a target scaled to
    zero alone) or when the bounds pin the target where it is. Otherwise it is a scale from
    `current` to what the bounds force now; the controller may later move anywhere in the
    range, which is why an autoscaler that merely allows change needs the grant too.
    """
    if current == 0 or low == high == current:
        return None
    forced = min(max(current, low), high)
    detail: dict[str, object] = {
        "replicas": {"old": current, "new": forced},
        "via": f"{AUTOSCALERS}/{autoscaler}",
        "bounds": {"minReplicas": low, "maxReplicas": high},
    }
    return AttemptedAction("scale", namespace, resource, name, detail=detail)


def deletable_resources(
    policies: Iterable[AccessPolicy],
    namespace: Namespace,
    user: str,
    groups: Sequence[str],
) -> tuple[str, ...]:
    """The resources whose delete some policy protects in `namespace` for this caller, in
    the order the policies (by name) list them: what deleting the namespace must account for."""
    group_set = frozenset(groups)
    found: dict[str, None] = {}
    for policy in sorted(policies, key=lambda p: p.metadata.name or ""):
        if "delete" not in policy.spec.actions or not covers_namespace(policy, namespace):
            continue
        if is_exempt(policy, user, group_set):
            continue
        found.update(dict.fromkeys(policy.spec.resources))
    return tuple(found)


def namespace_deletes(
    namespace: str, objects: Mapping[str, Sequence[Listed]]
) -> list[AttemptedAction]:
    """One delete per object the namespace controller would remove, by resource then name;
    `objects` maps each protected resource to the objects that exist."""
    via = f"{NAMESPACES}/{namespace}"
    return [
        AttemptedAction("delete", namespace, resource, name, detail={"via": via})
        for resource, listed in objects.items()
        for name in sorted(item.name for item in listed)
    ]


def cascade_deletes(
    namespace: str,
    owner: str,
    owner_uid: str,
    objects: Mapping[str, Sequence[Listed]],
    protected: Sequence[str],
) -> list[AttemptedAction]:
    """The deletes of protected objects the garbage collector performs after `owner` (its
    `resource/name`) is deleted with background or foreground propagation.

    The set grows from the owner's uid until nothing more joins. An object joins when any
    owner it names is gone: the collector keeps one whose other owner still exists, but that
    owner may not exist at all (then it goes), and telling the two apart would need a read of
    every kind an owner can be; so such an object needs the grant too (failing closed).
    `objects` holds the protected resources and the intermediate owners, by resource.
    """
    gone = {owner_uid}
    remaining = [(resource, item) for resource, items in objects.items() for item in items]
    removed: list[tuple[str, str]] = []
    for _round in range(len(remaining) + 1):  # each round removes at least one, or ends
        joined = [
            (resource, item)
            for resource, item in remaining
            if item.uid not in gone and not gone.isdisjoint(item.owners)
        ]
        if not joined:
            break
        gone.update(item.uid for _, item in joined)
        removed += [(resource, item.name) for resource, item in joined]
        remaining = [pair for pair in remaining if pair not in joined]
    order = {resource: index for index, resource in enumerate(protected)}
    hit = sorted(
        (pair for pair in removed if pair[0] in order), key=lambda pair: (order[pair[0]], pair[1])
    )
    return [
        AttemptedAction("delete", namespace, resource, name, detail={"via": owner})
        for resource, name in hit
    ]


def history_deletes(
    namespace: str,
    cronjob: str,
    cuts: Sequence[HistoryCut],
    jobs: Sequence[HistoryJob],
) -> list[AttemptedAction]:
    """The deletes of Jobs the CronJob controller performs once `cronjob`'s history limits
    are cut, by Job name.

    Its history is every Job whose controller ownerReference names the CronJob (the
    controller matches by name only, so a Job owned by another kind of the same name counts
    too), split into succeeded and failed; it deletes the oldest beyond each limit, by
    `status.startTime`, Jobs without one last, then by name. When a start time cannot be
    read the order is unknown, so every finished Job of that kind counts (failing closed).
    """
    via_of: dict[str, str] = {}
    for cut in cuts:
        history = [
            job for job in jobs if job.controller == cronjob and job.succeeded is cut.succeeded
        ]
        excess = len(history) - cut.limit
        if excess <= 0:
            continue
        if all(job.start_readable for job in history):
            history.sort(key=lambda job: (job.started is None, job.started or _NEVER, job.name))
            history = history[:excess]
        for job in history:
            via_of.setdefault(job.name, cut.via)
    owner = f"{CRONJOBS}/{cronjob}"
    return [
        AttemptedAction("delete", namespace, JOBS, name, detail={"via": via, "owner": owner})
        for name, via in sorted(via_of.items())
    ]


def protection_lost(
    policies: Iterable[AccessPolicy | UnreadablePolicy],
    name: str,
    before: Mapping[str, str],
    after: Mapping[str, str],
) -> tuple[str, ...]:
    """The policies that protect namespace `name` with labels `before` and no longer would
    with labels `after`, by name. An invalid policy whose namespaces cannot be read might
    stop covering on any label change, so it counts as lost (failing closed)."""
    old, new = Namespace(name, before), Namespace(name, after)
    lost = []
    for policy in policies:
        if isinstance(policy, UnreadablePolicy):
            if policy.may_cover(old) and (policy.namespaces is None or not policy.may_cover(new)):
                lost.append(policy.name)
        elif covers_namespace(policy, old) and not covers_namespace(policy, new):
            lost.append(policy.metadata.name or "")
    return tuple(sorted(lost))


def unprotect(name: str, lost: Sequence[str], before: Mapping[str, str]) -> AttemptedAction:
    """`unprotect namespace NAME`: the label change that ends the protection of `lost`."""
    detail: dict[str, object] = {"policies": list(lost), "labels": dict(before)}
    return AttemptedAction(UNPROTECT_VERB, name, NAMESPACES, name, detail=detail)
