"""Field edits that amount to a protected action: which change of which field ends, replaces or
rescales a protected object, decided as that action (docs/threat-model.md, "decided" rows).

The webhook's decoder reads both sides of an UPDATE into the states below and asks
`edit_outcome` (an object's own UPDATE) or `resize_outcome` (`pods/resize`) what the edit
amounts to. Each `Outcome` names the field it came through (`via`), which the audit record
keeps, so a reviewer sees that "delete deployment web" was an owner-reference patch. The
rules, and why each is one:

* `metadata.ownerReferences` changed to a non-empty list: the garbage collector deletes an
  object once none of its owners exists, and the new owner may never have existed (or be an
  object the editor may delete): a delete of the object. Removing every owner orphans it and
  deletes nothing.
* On a live pod (not Succeeded or Failed): `spec.activeDeadlineSeconds` set or lowered (the
  kubelet kills the pod when it passes) or a container or init container `image` changed (the
  kubelet restarts that container with the new image, inside the pod): a delete of the pod.
  So is a `pods/resize` that changes a resource whose container's `resizePolicy` says
  `RestartContainer`.
* Workloads: `spec.replicas` changed is a scale (a direct one: no `via`); a StatefulSet's
  `spec.ordinals.start` changed makes the controller replace every replica outside the new
  range: a scale too.
* Jobs: the pods a Job runs are `spec.parallelism`, or none while `spec.suspend` is true (the
  controller deletes the active pods); a change of that number is a scale of the Job.
  `spec.activeDeadlineSeconds` or `spec.backoffLimit` set or lowered can fail the Job
  at once, which deletes its active pods: a scale to 0. `spec.ttlSecondsAfterFinished` set or
  lowered makes the TTL controller delete the Job once it finished (at once if it has): a
  delete of the Job.
* CronJobs: `spec.successfulJobsHistoryLimit` or `spec.failedJobsHistoryLimit` set or lowered
  makes the CronJob controller delete the oldest finished Jobs beyond the new limit
  (`history_cuts`); which Jobs that is needs the cluster, so `indirect.history_deletes`
  decides it.

An edit that amounts to a delete and a scale at once is decided as the delete: a delete grant
already allows ending every pod of the object. Several fields of one outcome are named
together in `via`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jitgate.core.vocabulary import Verb

OWNER_REFERENCES = "metadata.ownerReferences"
POD_DEADLINE = "spec.activeDeadlineSeconds"
ORDINALS = "spec.ordinals.start"
JOB_PARALLELISM = "spec.parallelism"
JOB_SUSPEND = "spec.suspend"
JOB_DEADLINE = "spec.activeDeadlineSeconds"
JOB_BACKOFF = "spec.backoffLimit"
JOB_TTL = "spec.ttlSecondsAfterFinished"
SUCCESSFUL_HISTORY = "spec.successfulJobsHistoryLimit"
FAILED_HISTORY = "spec.failedJobsHistoryLimit"
# A pod in one of these phases runs nothing any more: no edit ends or replaces it.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
RESTART_CONTAINER = "RestartContainer"


@dataclass(frozen=True)
class OwnerReference:
    """One entry of `metadata.ownerReferences`, every field the garbage collector reads."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str | None = None
    # requests and limits by resource name ("cpu", "memory"), as the API server sends them
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    # the resources whose resize restarts the container (resizePolicy RestartContainer)
    restarts_on_resize: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PodState:
    phase: str | None = None
    active_deadline_seconds: int | None = None
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()

    @property
    def live(self) -> bool:
        return self.phase not in FINISHED_PHASES


@dataclass(frozen=True)
class WorkloadState:
    """A workload with replicas (Deployment, StatefulSet, ReplicaSet, ReplicationController)."""

    replicas: int
    ordinals_start: int = 0


@dataclass(frozen=True)
class JobState:
    parallelism: int = 1  # the API server's default
    suspend: bool = False
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None
    ttl_seconds_after_finished: int | None = None

    @property
    def running(self) -> int:
        """How many pods the Job runs at once."""
        return 0 if self.suspend else self.parallelism


@dataclass(frozen=True)
class CronJobState:
    """A CronJob's history limits; None keeps every finished Job of that kind."""

    successful_jobs_history_limit: int | None = None
    failed_jobs_history_limit: int | None = None


@dataclass(frozen=True)
class HistoryCut:
    """A history limit tightened: the CronJob controller keeps only the newest `limit` of the
    CronJob's finished Jobs that succeeded (`succeeded`) or failed, and deletes the rest."""

    via: str
    succeeded: bool
    limit: int


@dataclass(frozen=True)
class ObjectState:
    """One side of an UPDATE, as far as the rules read it; the kind-specific part is set for
    the kinds whose fields they read."""

    owners: tuple[OwnerReference, ...] = ()
    pod: PodState | None = None
    workload: WorkloadState | None = None
    job: JobState | None = None


@dataclass(frozen=True)
class Outcome:
    """What an edit amounts to: `verb` on the edited object, through the fields in `via`
    (None for a direct scale of `spec.replicas`)."""

    verb: Verb
    via: str | None
    replicas: tuple[int, int] | None = None  # (old, new) for a scale


def _via(fields: Iterable[str]) -> str:
    return ", ".join(fields)


def _tightened(old: int | None, new: int | None) -> bool:
    """A limit set where there was none, or lowered."""
    return new is not None and (old is None or new < old)


def owner_outcome(
    before: tuple[OwnerReference, ...], after: tuple[OwnerReference, ...]
) -> Outcome | None:
    if after and set(after) != set(before):
        return Outcome("delete", OWNER_REFERENCES)
    return None


def _image_changes(
    kind: str, before: tuple[Container, ...], after: tuple[Container, ...]
) -> list[str]:
    images = {c.name: c.image for c in before}
    return [
        f"spec.{kind}[{c.name}].image"
        for c in after
        if c.name in images and images[c.name] != c.image
    ]


def pod_outcome(before: PodState, after: PodState) -> Outcome | None:
    if not before.live:
        return None
    fields: list[str] = []
    if _tightened(before.active_deadline_seconds, after.active_deadline_seconds):
        fields.append(POD_DEADLINE)
    fields += _image_changes("containers", before.containers, after.containers)
    fields += _image_changes("initContainers", before.init_containers, after.init_containers)
    return Outcome("delete", _via(fields)) if fields else None


def resize_outcome(before: PodState, after: PodState) -> Outcome | None:
    """A `pods/resize`: a delete of the pod when a container restarts for it."""
    if not before.live:
        return None
    old = {c.name: c for c in before.containers}
    fields: list[str] = []
    for container in after.containers:
        previous = old.get(container.name)
        if previous is None:
            continue
        named = {*container.requests, *container.limits, *previous.requests, *previous.limits}
        changed = {
            resource
            for resource in named
            if container.requests.get(resource) != previous.requests.get(resource)
            or container.limits.get(resource) != previous.limits.get(resource)
        }
        if changed & (container.restarts_on_resize | previous.restarts_on_resize):
            fields.append(f"spec.containers[{container.name}].resources")
    return Outcome("delete", _via(fields)) if fields else None


def workload_outcome(before: WorkloadState, after: WorkloadState) -> Outcome | None:
    replicas = (before.replicas, after.replicas)
    if before.ordinals_start != after.ordinals_start:
        return Outcome("scale", ORDINALS, replicas)
    if before.replicas != after.replicas:
        return Outcome("scale", None, replicas)
    return None


def job_outcome(before: JobState, after: JobState) -> Outcome | None:
    if _tightened(before.ttl_seconds_after_finished, after.ttl_seconds_after_finished):
        return Outcome("delete", JOB_TTL)
    ending: list[str] = []
    if _tightened(before.active_deadline_seconds, after.active_deadline_seconds):
        ending.append(JOB_DEADLINE)
    if _tightened(before.backoff_limit, after.backoff_limit):
        ending.append(JOB_BACKOFF)
    if ending and before.running:
        return Outcome("scale", _via(ending), (before.running, 0))
    if before.running != after.running:
        fields = [
            name
            for name, old, new in (
                (JOB_PARALLELISM, before.parallelism, after.parallelism),
                (JOB_SUSPEND, before.suspend, after.suspend),
            )
            if old != new
        ]
        return Outcome("scale", _via(fields), (before.running, after.running))
    return None


def history_cuts(before: CronJobState, after: CronJobState) -> tuple[HistoryCut, ...]:
    """The history limits an UPDATE of a CronJob tightens (set where there was none, or
    lowered); a limit left as it was deletes nothing the old one did not."""
    cuts = []
    for via, succeeded, old, new in (
        (
            SUCCESSFUL_HISTORY,
            True,
            before.successful_jobs_history_limit,
            after.successful_jobs_history_limit,
        ),
        (FAILED_HISTORY, False, before.failed_jobs_history_limit, after.failed_jobs_history_limit),
    ):
        if new is not None and _tightened(old, new):
            cuts.append(HistoryCut(via, succeeded, new))
    return tuple(cuts)


def edit_outcome(before: ObjectState, after: ObjectState) -> Outcome | None:
    """What an UPDATE of an object (not a subresource) amounts to, or None: nothing jitgate
    protects. A delete wins over a scale."""
    outcomes = [owner_outcome(before.owners, after.owners)]
    if before.pod is not None and after.pod is not None:
        outcomes.append(pod_outcome(before.pod, after.pod))
    if before.job is not None and after.job is not None:
        outcomes.append(job_outcome(before.job, after.job))
    if before.workload is not None and after.workload is not None:
        outcomes.append(workload_outcome(before.workload, after.workload))
    found = [outcome for outcome in outcomes if outcome is not None]
    deletes = [outcome for outcome in found if outcome.verb == "delete"]
    if deletes:
        return Outcome("delete", _via(o.via for o in deletes if o.via))
    return found[0] if found else None
