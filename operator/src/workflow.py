"""Applying decisions: audit record first, then the API call, then Events and notifications.

Everything that changes one request or its grant runs under that request's lock, so the
request's daemon, its grant's daemon and the deletion handlers never interleave. Records
already written by this process are remembered by key, so a retried step does not write
them twice; across restarts the stored status says what was done (see `jitgate.core.requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import kopf
from jitgate.operator.config import OperatorConfig
from jitgate.operator.kube import ApiError, KubeApi, Obj
from jitgate.operator.metrics import Metrics
from jitgate.operator.notify import Notification, Notifier, describe

from jitgate.audit.errors import AuditError
from jitgate.core import wire
from jitgate.core.actions import actions_summary
from jitgate.core.api import (
    TERMINAL_PHASES,
    AccessPolicy,
    AccessRequest,
    AccessRequestStatus,
    Grant,
    Subjects,
)
from jitgate.core.clock import Clock, format_time
from jitgate.core.events import Actor, AuditEvent, Record, grant_record
from jitgate.core.extensions import Extended
from jitgate.core.grants import Ended, belongs_to, end_grant, grant_body
from jitgate.core.next_steps import next_commands, recording_required
from jitgate.core.policy import Namespace, UnreadablePolicy
from jitgate.core.requests.after_denial import Denial
from jitgate.core.requests.approved import issued
from jitgate.core.requests.decide import decide
from jitgate.core.requests.new import deny_invalid
from jitgate.core.requests.step import REVIEW_REQUIRED, Notice, NotifyKind, RevokeGrant, Step, World
from jitgate.core.requests.stored import read_request

logger = logging.getLogger("jitgate.operator")

REQUESTS = "accessrequests"
GRANTS = "grants"
_MAX_STEPS = 8  # None → Pending → Approved is three; more means something keeps changing
_PHASE_RANK = {None: 0, "Pending": 1, "Approved": 2}


class GrantConflict(Exception):
    """A Grant with the planned name exists but belongs to something else."""


class UnreadableRequest(Exception):
    """A request whose metadata or status does not validate: nothing is decided until it is
    fixed (its daemon logs this and retries)."""


class AuditLog(Protocol):
    async def append(self, event: AuditEvent) -> object: ...


class RecentKeys:
    """A bounded set: the facts this process recorded lately."""

    def __init__(self, limit: int = 100_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def request_key(namespace: str, name: str) -> str:
    return f"request/{namespace}/{name}"


def _rank(phase: str | None) -> int:
    return _PHASE_RANK.get(phase, 3)


def _mark(obj: Mapping[str, Any]) -> tuple[int, int, bool]:
    """How far a request has come: phase, approvals seen, break-glass review recorded."""
    status = obj.get("status") or {}
    conditions = status.get("conditions")
    reviewed = any(
        isinstance(c, dict) and c.get("type") == REVIEW_REQUIRED and c.get("status") == "False"
        for c in (conditions if isinstance(conditions, list) else [])
    )
    return _rank(status.get("phase")), int(status.get("observedApprovals") or 0), reviewed


def _plain(body: Mapping[str, Any]) -> Obj:
    """A deep, plain copy of a kopf body (its views are live)."""
    return copy.deepcopy({key: body[key] for key in body})


class Channel(Protocol):
    """Somewhere notifications go; `send` only queues, the lifecycle never waits."""

    def send(self, note: Notification) -> None: ...


def _run(request: AccessRequest, status: AccessRequestStatus, catalog: Catalog) -> tuple[str, ...]:
    """The commands a just-issued grant allows its requester (`kubectl jit exec` where a
    governing policy requires sessions to be recorded); none before there is a grant."""
    if status.grant is None or status.phase != "Approved":
        return ()
    names = status.policy_names or request.status.policy_names
    recorded = recording_required(catalog.policies(), names)
    return tuple(next_commands(request, recorded=recorded))


class Catalog(Protocol):
    """The policies and namespace labels the operator's indexes hold."""

    def policies(self) -> Sequence[AccessPolicy]: ...

    def unreadable(self) -> Sequence[UnreadablePolicy]: ...

    def labels(self, namespace: str) -> Mapping[str, str]: ...

    def denials(self, namespace: str) -> Sequence[Denial]: ...


def _post(obj: Mapping[str, Any], notices: Sequence[Notice]) -> None:
    body = kopf.Body(cast(kopf.RawBody, obj))
    for notice in notices:
        kopf.event(
            body,
            type="Warning" if notice.warning else "Normal",
            reason=notice.reason,
            message=notice.message[:1024],
        )


@dataclass
class Workflow:
    config: OperatorConfig
    clock: Clock
    kube: KubeApi
    audit: AuditLog
    metrics: Metrics
    notifier: Notifier | None
    # Further channels told the same (the Slack app); each only queues.
    channels: Sequence[Channel] = ()

    def __post_init__(self) -> None:
        self.recorded = RecentKeys()
        self.locks = KeyedLocks()
        # How far (`_mark`) this process last took each request, per uid: a body older than
        # that is stale (its watch event is on the way) and is not acted on.
        self._written: dict[str, tuple[int, int, bool]] = {}

    # ------------------------------------------------------------------ primitives

    async def record(self, record: Record) -> None:
        if record.key in self.recorded:
            return
        try:
            await self.audit.append(record.event)
        except AuditError:
            self.metrics.audit_failures.inc()
            raise
        self.recorded.add(record.key)

    def _notify(
        self,
        kind: NotifyKind | None,
        request: AccessRequest,
        status: AccessRequestStatus,
        alert: Subjects | None = None,
        run: tuple[str, ...] = (),
    ) -> None:
        if kind is None:
            return
        note = describe(request, kind, status, format_time(self.clock.now()), alert, run)
        for channel in (self.notifier, *self.channels):
            if channel is not None:
                channel.send(note)

    def _world(self, namespace: str, catalog: Catalog) -> World:
        return World(
            now=self.clock.now(),
            policies=catalog.policies(),
            unreadable=catalog.unreadable(),
            namespace=Namespace(namespace, catalog.labels(namespace)),
            retention=self.config.retention,
            denials=catalog.denials(namespace),
        )

    def _remember(self, obj: Mapping[str, Any]) -> None:
        uid = obj.get("metadata", {}).get("uid") or ""
        mark = _mark(obj)
        if uid:
            self._written[uid] = max(self._written.get(uid, mark), mark)

    def _stale(self, obj: Mapping[str, Any]) -> bool:
        uid = obj.get("metadata", {}).get("uid") or ""
        mark = _mark(obj)
        return uid in self._written and mark < self._written[uid]

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)

    # ------------------------------------------------------------------ requests

    async def reconcile(self, raw: Mapping[str, Any], catalog: Catalog) -> dt.datetime | None:
        """Drive one request as far as it goes now; returns when to look again."""
        obj: Obj | None = _plain(raw)
        meta = dict(obj.get("metadata", {})) if obj else {}
        async with self.locks.hold(request_key(meta.get("namespace", ""), meta.get("name", ""))):
            for _ in range(_MAX_STEPS):
                if obj is None or self._stale(obj):
                    return None
                extended = await self._extended(obj)
                step, request = self._decide(obj, catalog, extended)
                if not step.acts:
                    return step.wake_at
                obj = await self._apply(obj, request, step, catalog)
        logger.warning(
            "Request %s/%s kept changing; will look again", meta.get("namespace"), meta.get("name")
        )
        return self.clock.now()

    async def _extended(self, obj: Obj) -> Extended | None:
        """For an extension still to be decided or issued: the request it extends and that
        request's grant, read now (`jitgate.core.extensions`)."""
        name = ((obj.get("spec") or {}).get("extends") or {}).get("name")
        status = obj.get("status") or {}
        if (
            not isinstance(name, str)
            or status.get("grant")
            or status.get("phase") in TERMINAL_PHASES
        ):
            return None
        namespace = obj["metadata"]["namespace"]
        raw = await self.kube.get(REQUESTS, namespace, name)
        earlier = read_request(raw) if raw is not None else None
        if not isinstance(earlier, AccessRequest):
            return Extended(name, None, None)
        reference = earlier.status.grant
        raw_grant = await self.kube.get(GRANTS, namespace, reference.name) if reference else None
        grant = wire.read(Grant, raw_grant) if raw_grant is not None else None
        if not isinstance(grant, Grant) or not belongs_to(
            raw_grant or {}, earlier.metadata.uid or ""
        ):
            return Extended(name, earlier, None)
        return Extended(name, earlier, grant.spec)

    def _decide(
        self, obj: Obj, catalog: Catalog, extended: Extended | None = None
    ) -> tuple[Step, AccessRequest | None]:
        world = self._world(obj.get("metadata", {}).get("namespace", ""), catalog)
        world = dataclasses.replace(world, extended=extended)
        parsed = read_request(obj)
        if isinstance(parsed, wire.Unreadable):
            if parsed.part != "spec":
                raise UnreadableRequest(str(parsed))
            return deny_invalid(parsed, obj, world), None
        return decide(parsed, world), parsed

    async def _apply(
        self, obj: Obj, request: AccessRequest | None, step: Step, catalog: Catalog
    ) -> Obj | None:
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        for record in step.records:
            await self.record(record)
        status, notices = step.status, step.notices
        if step.grant is not None and request is not None:
            grant = await self._issue(obj, request, step.grant)
            done = issued(request, step, grant, self.clock.now())
            status, notices = done.status, done.notices
        if step.revoke is not None:
            await self._revoke(obj, step.revoke)
            return await self.kube.get(REQUESTS, namespace, name)
        if step.delete:
            logger.info("Deleting %s/%s: finished and past the retention period", namespace, name)
            await self.kube.delete(REQUESTS, namespace, name, uid=meta.get("uid", ""))
            return None
        patched = obj
        if status is not None:
            try:
                patched = await self.kube.patch_status(REQUESTS, namespace, name, status.to_patch())
            except ApiError as error:
                if error.not_found:
                    return None
                raise
            self._remember(patched)
            phase = status.phase
            if phase and phase != obj.get("status", {}).get("phase"):
                self.metrics.transitions.labels(phase=phase).inc()
                self.metrics.observe_request(namespace, name, phase)
        if step.approved_after is not None:
            self.metrics.time_to_approval.observe(max(step.approved_after.total_seconds(), 0.0))
        _post(patched, notices)
        if request is not None and status is not None:
            self._notify(step.notify, request, status, step.alert, _run(request, status, catalog))
        return patched

    async def _issue(self, obj: Obj, request: AccessRequest, planned: Grant) -> Grant:
        """Create the grant, or adopt the one an earlier attempt created (and recorded)."""
        namespace = planned.metadata.namespace or ""
        name = planned.metadata.name or ""
        uid = request.metadata.uid or ""
        existing = await self.kube.get(GRANTS, namespace, name)
        if existing is None:
            await self.record(grant_record("grant.created", planned, self.clock.now()))
            try:
                existing = await self.kube.create(GRANTS, namespace, grant_body(planned, request))
            except ApiError as error:
                if not error.conflict:
                    raise
                existing = await self.kube.get(GRANTS, namespace, name)
            else:
                message = (
                    f"issued to {planned.spec.user} until {format_time(planned.spec.expires_at)}"
                )
                _post(existing, (Notice("Issued", message),))
        if existing is None or not belongs_to(existing, uid):
            raise GrantConflict(f"Grant {namespace}/{name} exists but was not issued for {uid}")
        grant = wire.read(Grant, existing)
        if isinstance(grant, wire.Unreadable):
            raise GrantConflict(str(grant))
        if not (existing.get("status") or {}).get("phase"):
            with contextlib.suppress(ApiError):
                active = {"phase": "Active", "actions": actions_summary(grant.spec.actions)}
                await self.kube.patch_status(GRANTS, namespace, name, active)
        self.metrics.observe_grant(namespace, name, True)
        return grant

    async def _revoke(self, obj: Obj, revoke: RevokeGrant) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        grant = await self.kube.get(GRANTS, namespace, revoke.grant)
        if grant is None:
            # Its deletion was handled (and recorded) without updating the request.
            patch = revoke.gone.to_patch()
            self._remember(await self.kube.patch_status(REQUESTS, namespace, name, patch))
            return
        actor = Actor(user=revoke.by) if revoke.by else None
        await self._end(grant, "Revoked", actor=actor, reason=revoke.reason, delete=True)

    async def request_deleted(self, raw: Mapping[str, Any]) -> None:
        """Deleting a request revokes its grant; the grant's own handler records it."""
        obj = _plain(raw)
        meta = obj["metadata"]
        grant = (obj.get("status") or {}).get("grant") or {}
        if grant.get("name"):
            await self.kube.delete(GRANTS, meta["namespace"], grant["name"])
        self.forget(meta.get("uid", ""))
        self.metrics.forget_request(meta["namespace"], meta["name"])

    # ------------------------------------------------------------------ grants

    async def end(
        self, raw: Mapping[str, Any], kind: Ended, *, reason: str | None, delete: bool
    ) -> None:
        """End a grant (expired, or deleted by someone): record, mark, update its request."""
        obj = _plain(raw)
        request_name = obj.get("spec", {}).get("accessRequest", {}).get("name", "")
        finished = f"{obj['metadata'].get('uid')}/ended"
        if finished in self.recorded and (obj.get("status") or {}).get("phase") == kind:
            return  # this process already took it all the way; only kopf's finalizer is left
        async with self.locks.hold(request_key(obj["metadata"]["namespace"], request_name)):
            await self._end(obj, kind, actor=None, reason=reason, delete=delete)

    async def _end(
        self, obj: Obj, kind: Ended, *, actor: Actor | None, reason: str | None, delete: bool
    ) -> None:
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        grant = wire.read(Grant, obj)
        if isinstance(grant, wire.Unreadable):
            logger.warning("%s; it is left alone", grant)
            return
        reference = grant.spec.access_request
        raw_request = await self.kube.get(REQUESTS, namespace, reference.name)
        request = None
        if raw_request is not None:
            parsed = read_request(raw_request)
            if isinstance(parsed, AccessRequest) and parsed.metadata.uid == reference.uid:
                request = parsed
        if reason is None:
            gone = request is None or request.metadata.deletion_timestamp is not None
            reason = (
                "expired"
                if kind == "Expired"
                else "revoked: its AccessRequest was deleted"
                if gone
                else "revoked: the Grant was deleted"
            )
        ending = end_grant(
            grant, request, now=self.clock.now(), kind=kind, actor=actor, reason=reason
        )
        for record in ending.records:
            await self.record(record)
        if ending.grant_status is not None:
            try:
                await self.kube.patch_status(
                    GRANTS, namespace, name, ending.grant_status.to_patch()
                )
            except ApiError as error:
                if not error.not_found:
                    raise
        patched = None
        if ending.request_status is not None and request is not None and raw_request is not None:
            try:
                patched = await self.kube.patch_status(
                    REQUESTS, namespace, reference.name, ending.request_status.to_patch()
                )
            except ApiError as error:
                # Deleted since it was read (its namespace being emptied, say): the grant's
                # own end is recorded and marked all the same, and nothing is left to tell.
                if not error.not_found:
                    raise
        if patched is not None:
            assert request is not None and ending.request_status is not None
            self._remember(patched)
            self.metrics.transitions.labels(phase=kind).inc()
            self.metrics.observe_request(namespace, reference.name, kind)
            _post(patched, ending.notices)
            self._notify(ending.notify, request, ending.request_status)
        elif ending.grant_status is not None:
            _post(obj, ending.notices)  # no request to tell: say it on the grant
        if ending.lag is not None:
            self.metrics.expiry_lag.observe(max(ending.lag.total_seconds(), 0.0))
        self.metrics.observe_grant(namespace, name, False)
        if delete:
            await self.kube.delete(GRANTS, namespace, name, uid=meta.get("uid", ""))
            self.recorded.add(f"{meta.get('uid')}/ended")
