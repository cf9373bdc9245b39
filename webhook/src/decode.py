"""Which AdmissionRequests are protected actions, decoded into `AttemptedAction`s.

Only the shapes the API server sends are understood: CONNECT on pods/exec, pods/attach and
pods/portforward with their options object; DELETE with the object in `oldObject`; CREATE of
pods/eviction (the API server then deletes the pod without a DELETE review of its own, so an
eviction is a delete of the pod); UPDATE of the scale subresource (autoscaling/v1 Scale) or
of a workload whose `spec.replicas` changes; UPDATE of pods/ephemeralcontainers that adds
a container (kubectl debug), which runs any image and command inside the pod and is
therefore decided as an exec that only a grant pinning neither container nor command covers.
A DELETE without a name is one object of a deletecollection: the API server admits each
object it deletes with the object in `oldObject`, so it is decided as that object's delete.

Any other UPDATE of an object, and a pods/resize, is read into the states of
`jitgate.core.admission.edits`, which decides what the edit amounts to (an owner-reference
change, a live pod's deadline or image, a StatefulSet's ordinals, a Job's parallelism ...):
this module only parses.

Four shapes need the cluster or the policies before they become actions, so they decode
into what the service resolves (`Indirect`): a HorizontalPodAutoscaler CREATE or UPDATE
(`AutoscalerTarget`: the scale it forces depends on the target's replicas), a namespace
DELETE (`NamespaceDeletion`: a delete of each protected object in it), a namespace label
change, through the object or its status or finalize subresource (`NamespaceRelabel`: an
`unprotect` when a policy stops covering it) and a CronJob UPDATE that tightens a history
limit (`CronJobHistory`: a delete of each finished Job the controller then removes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

import msgspec
from jitgate.webhook.review import AdmissionRequest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission import edits, redeletes
from jitgate.core.admission.indirect import AUTOSCALERS
from jitgate.core.canonical import digest
from jitgate.core.vocabulary import (
    CRONJOBS,
    JOBS,
    NAMESPACES,
    PODS,
    REPLICATED_RESOURCES,
    group_qualified,
)

CONNECT_SUBRESOURCES = {"exec": "exec", "attach": "attach", "portforward": "portforward"}
_OPTIONS_KIND = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}
DELETECOLLECTION = "deletecollection"
# Deployments and friends default spec.replicas to 1; Scale omits replicas when it is 0.
_DEFAULT_WORKLOAD_REPLICAS = 1
# An autoscaler's minReplicas defaults to 1.
_DEFAULT_MIN_REPLICAS = 1
# What an autoscaler's scaleTargetRef (API group, kind) names, for the resources policies can
# protect the scale of; any other target is no protected workload.
_SCALE_TARGETS = {
    ("apps", "Deployment"): "deployments.apps",
    ("apps", "StatefulSet"): "statefulsets.apps",
    ("apps", "ReplicaSet"): "replicasets.apps",
    ("", "ReplicationController"): "replicationcontrollers",
}
# Namespace updates that can change its labels: the object, and its status and finalize
# subresources (both keep whatever metadata they are sent).
_NAMESPACE_UPDATES = ("", "status", "finalize")


@dataclass(frozen=True)
class AutoscalerTarget:
    """A HorizontalPodAutoscaler's target and bounds: a scale once its replicas are read."""

    namespace: str
    autoscaler: str
    resource: str  # one of REPLICATED_RESOURCES
    name: str
    low: int
    high: int


@dataclass(frozen=True)
class NamespaceDeletion:
    """A namespace being deleted: a delete of each protected object the namespace holds."""

    name: str


@dataclass(frozen=True)
class NamespaceRelabel:
    """A namespace's labels changing from `before` to `after`."""

    name: str
    before: dict[str, str]
    after: dict[str, str]


@dataclass(frozen=True)
class CronJobHistory:
    """A CronJob whose history limits are cut: a delete of the Jobs beyond them."""

    namespace: str
    name: str
    cuts: tuple[edits.HistoryCut, ...]


Indirect = AutoscalerTarget | NamespaceDeletion | NamespaceRelabel | CronJobHistory


@dataclass(frozen=True, eq=False)
class PendingDigest:
    """A deleted object's digest (`detail["digest"]`), computed only when its record is
    written (`recorded`): the API server validates one DELETE two or three times, and the
    reviews answered without a record (a repeat of the same request, an exempt caller) would
    otherwise each pay for the whole object's canonical JSON and SHA-256 (~45 µs for a 4.5 KB
    pod)."""

    deleted: dict[str, Any]


def recorded(attempted: AttemptedAction) -> AttemptedAction:
    """`attempted` as its audit record states it: its deleted object's digest computed."""
    pending = attempted.detail.get("digest")
    if not isinstance(pending, PendingDigest):
        return attempted
    return replace(attempted, detail={**attempted.detail, "digest": digest(pending.deleted)})


class Undecidable(ValueError):
    """A protected-looking request whose content cannot be understood; it is denied."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class _Options(_Strict):
    kind: str | None = None
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False
    container: str | None = None
    command: list[str] | None = None
    ports: list[int] | None = None


class _FastOptions(msgspec.Struct, frozen=True):
    """`_Options` read by msgspec, at a fifth of the cost, on every exec, attach and
    port-forward: for options both accept, the same values (tests/webhook/test_decode.py);
    `_Options` says what is wrong with the others, or reads the few only it accepts."""

    kind: str | None = None
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False
    container: str | None = None
    command: list[str] | None = None
    ports: list[int] | None = None


class _OwnerReference(_Strict):
    api_version: str = Field(default="", alias="apiVersion")
    kind: str
    name: str
    uid: str = ""
    controller: bool | None = None
    block_owner_deletion: bool | None = Field(default=None, alias="blockOwnerDeletion")

    def state(self) -> edits.OwnerReference:
        return edits.OwnerReference(
            self.api_version,
            self.kind,
            self.name,
            self.uid,
            self.controller,
            self.block_owner_deletion,
        )


class _Metadata(_Strict):
    name: str | None = None
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: str | None = None
    labels: dict[str, str] | None = None
    owner_references: list[_OwnerReference] | None = Field(default=None, alias="ownerReferences")


class _Ordinals(_Strict):
    start: int = Field(default=0, ge=0)


class _Replicas(_Strict):
    replicas: int | None = Field(default=None, ge=0)
    ordinals: _Ordinals | None = None


class _Scalable(_Strict):
    kind: str | None = None
    metadata: _Metadata | None = None
    spec: _Replicas | None = None


class _DeletedMetadata(_Metadata):
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")
    deletion_grace_period_seconds: int | None = Field(
        default=None, alias="deletionGracePeriodSeconds"
    )
    finalizers: list[str] | None = None


class _Deleted(_Strict):
    kind: str | None = None
    metadata: _DeletedMetadata | None = None


class _EphemeralContainer(_Strict):
    name: str
    image: str | None = None


class _ResizePolicy(_Strict):
    resource_name: str = Field(alias="resourceName")
    restart_policy: str = Field(alias="restartPolicy")


class _Resources(_Strict):
    requests: dict[str, str] | None = None
    limits: dict[str, str] | None = None


class _Container(_Strict):
    name: str
    image: str | None = None
    resources: _Resources | None = None
    resize_policy: list[_ResizePolicy] | None = Field(default=None, alias="resizePolicy")

    def state(self) -> edits.Container:
        resources = self.resources or _Resources()
        return edits.Container(
            self.name,
            self.image,
            dict(resources.requests or {}),
            dict(resources.limits or {}),
            frozenset(
                policy.resource_name
                for policy in self.resize_policy or ()
                if policy.restart_policy == edits.RESTART_CONTAINER
            ),
        )


class _PodSpec(_Strict):
    ephemeral_containers: list[_EphemeralContainer] | None = Field(
        default=None, alias="ephemeralContainers"
    )
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")
    containers: list[_Container] | None = None
    init_containers: list[_Container] | None = Field(default=None, alias="initContainers")


class _PodStatus(_Strict):
    phase: str | None = None


class _Pod(_Strict):
    kind: str | None = None
    metadata: _Metadata | None = None
    spec: _PodSpec | None = None
    status: _PodStatus | None = None

    def state(self) -> edits.PodState:
        spec = self.spec or _PodSpec()
        return edits.PodState(
            phase=self.status.phase if self.status is not None else None,
            active_deadline_seconds=spec.active_deadline_seconds,
            containers=tuple(c.state() for c in spec.containers or ()),
            init_containers=tuple(c.state() for c in spec.init_containers or ()),
        )


class _JobSpec(_Strict):
    parallelism: int | None = Field(default=None, ge=0)
    suspend: bool | None = None
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")
    backoff_limit: int | None = Field(default=None, alias="backoffLimit")
    ttl_seconds_after_finished: int | None = Field(default=None, alias="ttlSecondsAfterFinished")


class _Job(_Strict):
    kind: str | None = None
    metadata: _Metadata | None = None
    spec: _JobSpec | None = None

    def state(self) -> edits.JobState:
        spec = self.spec or _JobSpec()
        return edits.JobState(
            parallelism=1 if spec.parallelism is None else spec.parallelism,
            suspend=bool(spec.suspend),
            active_deadline_seconds=spec.active_deadline_seconds,
            backoff_limit=spec.backoff_limit,
            ttl_seconds_after_finished=spec.ttl_seconds_after_finished,
        )


class _CronJobSpec(_Strict):
    successful_jobs_history_limit: int | None = Field(
        default=None, alias="successfulJobsHistoryLimit"
    )
    failed_jobs_history_limit: int | None = Field(default=None, alias="failedJobsHistoryLimit")


class _CronJob(_Strict):
    spec: _CronJobSpec | None = None

    def state(self) -> edits.CronJobState:
        spec = self.spec or _CronJobSpec()
        return edits.CronJobState(
            spec.successful_jobs_history_limit, spec.failed_jobs_history_limit
        )


class _Eviction(_Strict):
    kind: str | None = None
    metadata: _Metadata | None = None


class _ScaleTargetRef(_Strict):
    api_version: str = Field(default="", alias="apiVersion")
    kind: str
    name: str


class _AutoscalerSpec(_Strict):
    scale_target_ref: _ScaleTargetRef = Field(alias="scaleTargetRef")
    min_replicas: int | None = Field(default=None, ge=0, alias="minReplicas")
    max_replicas: int = Field(ge=0, alias="maxReplicas")


class _Autoscaler(_Strict):
    metadata: _Metadata | None = None
    spec: _AutoscalerSpec


class _Labelled(_Strict):
    metadata: _Metadata | None = None


class _DeleteOptions(_Strict):
    grace_period_seconds: int | None = Field(default=None, alias="gracePeriodSeconds")
    propagation_policy: str | None = Field(default=None, alias="propagationPolicy")
    orphan_dependents: bool | None = Field(default=None, alias="orphanDependents")


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], value: dict[str, Any] | None, what: str) -> M:
    if value is None:
        raise Undecidable(f"the request carries no {what}")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Undecidable(f"the {what} is malformed at {where}: {first['msg']}") from None


def decode(request: AdmissionRequest) -> AttemptedAction | Indirect | None:
    """The protected action this request attempts (or what to resolve it from), or None
    when it is not one."""
    resource = group_qualified(request.resource.resource, request.resource.group)
    match request.operation:
        case "DELETE" if resource == NAMESPACES and not request.sub_resource:
            return NamespaceDeletion(_target_name(request))
        case "UPDATE" if resource == NAMESPACES and request.sub_resource in _NAMESPACE_UPDATES:
            return _relabel(request)
        case "CREATE" | "UPDATE" if resource == AUTOSCALERS and not request.sub_resource:
            return _autoscaler(request)
        case "CONNECT" if resource == PODS:
            if not request.sub_resource:
                raise Undecidable("a CONNECT on pods must name a subresource")
            if request.sub_resource not in CONNECT_SUBRESOURCES:
                return None  # e.g. pods/proxy: not an action policies protect
            return _connect(request)
        case "DELETE" if not request.sub_resource:
            return _delete(request, resource)
        case "CREATE" if resource == "pods" and request.sub_resource == "eviction":
            return _evict(request)
        case "UPDATE" if resource == "pods" and request.sub_resource == "ephemeralcontainers":
            return _debug(request)
        case "UPDATE" if resource == "pods" and request.sub_resource == "resize":
            return _resize(request)
        case "UPDATE" if resource in REPLICATED_RESOURCES and request.sub_resource == "scale":
            return _scale(request, resource)
        case "UPDATE" if resource == CRONJOBS and not request.sub_resource:
            return _cronjob(request)
        case "UPDATE" if not request.sub_resource:
            return _edit(request, resource)
    return None


def _namespace(request: AdmissionRequest) -> str:
    if not request.namespace:
        raise Undecidable(f"the request names no namespace for its {request.resource.resource}")
    return request.namespace


def _target_name(request: AdmissionRequest) -> str:
    if not request.name:
        raise Undecidable("the request names no object")
    return request.name


def _connect(request: AdmissionRequest) -> AttemptedAction:
    return connect_action(
        request.sub_resource, _namespace(request), _target_name(request), request.object
    )


def connect_action(
    sub: str, namespace: str, name: str, options_object: dict[str, Any] | None
) -> AttemptedAction:
    """The action a CONNECT of `pods/<sub>` with these options is (the session gateway
    decides the streams it opens with it too)."""
    options: _FastOptions | _Options
    try:
        options = msgspec.convert(options_object, _FastOptions)
    except msgspec.ValidationError:
        options = _parse(_Options, options_object, f"{_OPTIONS_KIND[sub]} object")
    if options.kind is not None and options.kind != _OPTIONS_KIND[sub]:
        raise Undecidable(f"pods/{sub} carries a {options.kind}, not a {_OPTIONS_KIND[sub]}")
    detail: dict[str, object]
    if sub == "portforward":
        detail = {"ports": list(options.ports or [])}
        return AttemptedAction("portforward", namespace, "pods", name, detail=detail)
    command = tuple(options.command) if sub == "exec" and options.command is not None else None
    detail = {"container": options.container, "stdin": options.stdin, "tty": options.tty}
    if sub == "exec":
        detail["command"] = list(command) if command is not None else None
    return AttemptedAction(
        "exec" if sub == "exec" else "attach",
        namespace,
        "pods",
        name,
        container=options.container or None,
        command=command,
        interactive=options.stdin or options.tty,
        detail=detail,
    )


def _same_object(
    request: AdmissionRequest, meta: _Metadata | None, what: str, *, name: str | None = None
) -> None:
    """The object must be the one the request names (or `name`, for an object of a
    collection); the API server never sends another."""
    if meta is None:
        return
    for field, stated, named in (
        ("namespace", meta.namespace, request.namespace),
        ("name", meta.name, request.name if name is None else name),
    ):
        if stated is not None and stated != named:
            raise Undecidable(f"the {what}'s {field} {stated!r} is not the request's {named!r}")


def _delete(request: AdmissionRequest, resource: str) -> AttemptedAction | None:
    deleted = request.old_object
    old = _parse(_Deleted, deleted, "deleted object") if deleted is not None else None
    stated = old.metadata if old is not None else None
    # One object of a deletecollection: the API server admits each object it deletes, named
    # in oldObject only.
    collected = stated.name if not request.name and stated is not None else None
    name = collected or request.name
    _same_object(request, stated, "deleted object", name=name)
    if not request.namespace:
        return None  # policies protect namespaces: cluster-scoped objects are never protected
    if not name:
        raise Undecidable("the request names no object")
    options = _DeleteOptions()
    if request.options is not None:
        options = _parse(_DeleteOptions, request.options, "DeleteOptions")
    if stated is not None and stated.deletion_timestamp is not None:
        pending = redeletes.PendingDeletion(
            stated.deletion_grace_period_seconds, tuple(stated.finalizers or ())
        )
        asked = redeletes.DeleteRequest(
            options.grace_period_seconds, options.propagation_policy, options.orphan_dependents
        )
        if redeletes.changes_nothing(pending, asked):
            return None  # already being deleted, as its first (decided) DELETE set it
    detail: dict[str, object] = {"kind": request.kind.kind, "name": name}
    if collected:
        detail["via"] = DELETECOLLECTION
    if deleted is not None and old is not None:  # both or neither
        meta = old.metadata or _Metadata()
        detail.update(
            kind=old.kind or request.kind.kind,
            labels=dict(meta.labels or {}),
            owners=[{"kind": ref.kind, "name": ref.name} for ref in meta.owner_references or ()],
            # The digest identifies exactly what was deleted without recording its content,
            # which for Secrets and ConfigMaps is sensitive.
            digest=PendingDigest(deleted),
        )
    if options.propagation_policy is not None:
        detail["propagationPolicy"] = options.propagation_policy
    if options.orphan_dependents is not None:  # the deprecated spelling of Orphan
        detail["orphanDependents"] = options.orphan_dependents
    return AttemptedAction("delete", request.namespace, resource, name, detail=detail)


def _evict(request: AdmissionRequest) -> AttemptedAction:
    eviction = _parse(_Eviction, request.object, "Eviction object")
    if eviction.kind is not None and eviction.kind != "Eviction":
        raise Undecidable(f"pods/eviction carries a {eviction.kind}, not an Eviction")
    _same_object(request, eviction.metadata, "Eviction")
    name = _target_name(request)
    detail: dict[str, object] = {"kind": "Pod", "name": name, "subresource": "eviction"}
    return AttemptedAction("delete", _namespace(request), "pods", name, detail=detail)


def _ephemeral(pod: _Pod) -> list[_EphemeralContainer]:
    return list(pod.spec.ephemeral_containers or ()) if pod.spec is not None else []


def _debug(request: AdmissionRequest) -> AttemptedAction | None:
    after = _parse(_Pod, request.object, "Pod object")
    before = _parse(_Pod, request.old_object, "old Pod object")
    _same_object(request, after.metadata, "Pod")
    _same_object(request, before.metadata, "old Pod")
    existing = {container.name for container in _ephemeral(before)}
    added = [c for c in _ephemeral(after) if c.name not in existing]
    if not added:
        return None  # ephemeral containers cannot be changed or removed: nothing runs
    detail: dict[str, object] = {
        "subresource": "ephemeralcontainers",
        "ephemeralContainers": [{"name": c.name, "image": c.image} for c in added],
    }
    # No container and an interactive session: any image may run any command, so neither a
    # grant pinning a container nor one pinning a command covers it.
    name = _target_name(request)
    return AttemptedAction(
        "exec", _namespace(request), "pods", name, interactive=True, detail=detail
    )


def _workload(value: _Scalable, default: int) -> edits.WorkloadState:
    spec = value.spec
    if spec is None:
        return edits.WorkloadState(default)
    replicas = default if spec.replicas is None else spec.replicas
    return edits.WorkloadState(replicas, spec.ordinals.start if spec.ordinals else 0)


def _scale(request: AdmissionRequest, resource: str) -> AttemptedAction | None:
    """UPDATE of the scale subresource (an autoscaling/v1 Scale, which omits 0 replicas)."""
    after = _parse(_Scalable, request.object, "Scale")
    before = _parse(_Scalable, request.old_object, "old Scale")
    _same_object(request, after.metadata, "Scale")
    _same_object(request, before.metadata, "old Scale")
    outcome = edits.workload_outcome(_workload(before, 0), _workload(after, 0))
    return _outcome(request, resource, outcome, {"subresource": "scale"})


class _Edited(_Strict):
    """Any object: the owner references every routed kind has."""

    metadata: _Metadata | None = None


def _object_state(resource: str, value: dict[str, Any] | None, what: str) -> edits.ObjectState:
    """One side of an UPDATE; the kind-specific part only for the kinds the rules read."""
    meta = _parse(_Edited, value, what).metadata or _Metadata()
    owners = tuple(ref.state() for ref in meta.owner_references or ())
    if resource == PODS:
        return edits.ObjectState(owners, pod=_parse(_Pod, value, what).state())
    if resource == JOBS:
        return edits.ObjectState(owners, job=_parse(_Job, value, what).state())
    if resource in REPLICATED_RESOURCES:
        workload = _workload(_parse(_Scalable, value, what), _DEFAULT_WORKLOAD_REPLICAS)
        return edits.ObjectState(owners, workload=workload)
    return edits.ObjectState(owners)


# The kinds whose fields the rules read, all namespaced: an UPDATE naming no namespace is
# malformed.
_NAMESPACED = frozenset({PODS, JOBS, CRONJOBS, *REPLICATED_RESOURCES})


def _edit(request: AdmissionRequest, resource: str) -> AttemptedAction | None:
    """An UPDATE of the object itself: what its changed fields amount to, if anything."""
    if not request.namespace and resource not in _NAMESPACED:
        return None  # policies protect namespaces: cluster-scoped objects are never protected
    what = f"{request.kind.kind} object"
    _same_object(request, _parse(_Edited, request.object, what).metadata, what)
    _same_object(request, _parse(_Edited, request.old_object, what).metadata, f"old {what}")
    after = _object_state(resource, request.object, what)
    outcome = edits.edit_outcome(_object_state(resource, request.old_object, f"old {what}"), after)
    detail: dict[str, object] = {}
    if outcome is not None and outcome.verb == "delete":
        owners = [{"kind": ref.kind, "name": ref.name} for ref in after.owners]
        detail.update(kind=request.kind.kind, owners=owners)
    return _outcome(request, resource, outcome, detail)


def _cronjob(request: AdmissionRequest) -> AttemptedAction | CronJobHistory | None:
    """An UPDATE of a CronJob: an edit of its own (an owner reference: its delete, which
    takes its Jobs with it) wins; otherwise the history limits it cuts."""
    direct = _edit(request, CRONJOBS)
    if direct is not None:
        return direct
    after = _parse(_CronJob, request.object, "CronJob object").state()
    before = _parse(_CronJob, request.old_object, "old CronJob object").state()
    cuts = edits.history_cuts(before, after)
    if not cuts:
        return None
    return CronJobHistory(_namespace(request), _target_name(request), cuts)


def _resize(request: AdmissionRequest) -> AttemptedAction | None:
    """pods/resize: a delete of the pod when one of its containers restarts for it."""
    after = _parse(_Pod, request.object, "Pod object")
    before = _parse(_Pod, request.old_object, "old Pod object")
    _same_object(request, after.metadata, "Pod")
    _same_object(request, before.metadata, "old Pod")
    outcome = edits.resize_outcome(before.state(), after.state())
    return _outcome(request, PODS, outcome, {"kind": "Pod", "subresource": "resize"})


def _outcome(
    request: AdmissionRequest,
    resource: str,
    outcome: edits.Outcome | None,
    detail: dict[str, object],
) -> AttemptedAction | None:
    """The action an edit amounts to, recorded with the fields it came through."""
    if outcome is None:
        return None
    detail = dict(detail)
    if outcome.replicas is not None:
        old, new = outcome.replicas
        detail["replicas"] = {"old": old, "new": new}
    if outcome.via is not None:
        detail["via"] = outcome.via
    name = _target_name(request)
    return AttemptedAction(outcome.verb, _namespace(request), resource, name, detail=detail)


def _relabel(request: AdmissionRequest) -> NamespaceRelabel | None:
    after = _parse(_Labelled, request.object, "Namespace object")
    before = _parse(_Labelled, request.old_object, "old Namespace object")
    _same_object(request, after.metadata, "Namespace")
    _same_object(request, before.metadata, "old Namespace")
    old = dict((before.metadata.labels if before.metadata else None) or {})
    new = dict((after.metadata.labels if after.metadata else None) or {})
    if old == new:
        return None  # only labels decide what policies cover
    return NamespaceRelabel(_target_name(request), old, new)


def _autoscaler(request: AdmissionRequest) -> AutoscalerTarget | None:
    hpa = _parse(_Autoscaler, request.object, "HorizontalPodAutoscaler object")
    _same_object(request, hpa.metadata, "HorizontalPodAutoscaler")
    target = hpa.spec.scale_target_ref
    group = target.api_version.rpartition("/")[0] if "/" in target.api_version else ""
    resource = _SCALE_TARGETS.get((group, target.kind))
    if resource is None:
        return None  # not a workload policies can protect the scale of
    low = hpa.spec.min_replicas
    meta = hpa.metadata or _Metadata()
    # A created autoscaler may have only a generateName; the record still says which.
    name = request.name or meta.name or f"{meta.generate_name or ''}*"
    return AutoscalerTarget(
        _namespace(request),
        name,
        resource,
        target.name,
        _DEFAULT_MIN_REPLICAS if low is None else low,
        hpa.spec.max_replicas,
    )
