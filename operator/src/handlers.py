"""The kopf registry: indexes, per-object daemons and deletion handlers, wired to a Workflow.

Each AccessRequest and each Grant gets a daemon. A request's daemon reconciles it whenever
its watch event arrives (the event handler wakes it) or its next deadline passes (the
scheduler wakes it); a grant's daemon ends the grant at `expiresAt`. Daemons are what kopf
pauses on a standby replica under peering, and what it restarts for every existing object
when an operator starts, which re-arms every timer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import kopf
from jitgate.operator.kube import ApiError, connection_info
from jitgate.operator.scheduler import Scheduler
from jitgate.operator.workflow import Workflow

from jitgate.core import wire
from jitgate.core.api import GROUP, VERSION, AccessPolicy, AccessRequest, Condition
from jitgate.core.clock import parse_time
from jitgate.core.enforcement import CONDITION, Routing, enforced_condition, enforcement, routing
from jitgate.core.grants import Ended
from jitgate.core.policy import Namespace, UnreadablePolicy, unreadable_policy
from jitgate.core.policy_ready import CONDITION as READY
from jitgate.core.policy_ready import readiness
from jitgate.core.requests.after_denial import Denial, denial_of
from jitgate.core.requests.step import set_condition
from jitgate.kube import Credentials

logger = logging.getLogger("jitgate.operator")

_ENDED = ("Expired", "Revoked")
_RESYNC = 300.0  # seconds: look again even when nothing woke the daemon
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class IndexCatalog:
    policy_index: kopf.Index[str, AccessPolicy | UnreadablePolicy]
    namespace_index: kopf.Index[str, dict[str, str]]
    denial_index: kopf.Index[str, Denial]

    def namespaces(self) -> list[Namespace]:
        return [
            Namespace(name, next(iter(store), {})) for name, store in self.namespace_index.items()
        ]

    def policies(self) -> Sequence[AccessPolicy]:
        return [
            p for store in self.policy_index.values() for p in store if isinstance(p, AccessPolicy)
        ]

    def unreadable(self) -> Sequence[UnreadablePolicy]:
        return [
            p
            for store in self.policy_index.values()
            for p in store
            if isinstance(p, UnreadablePolicy)
        ]

    def labels(self, namespace: str) -> Mapping[str, str]:
        store = self.namespace_index.get(namespace)
        return next(iter(store), {}) if store else {}

    def denials(self, namespace: str) -> Sequence[Denial]:
        return list(self.denial_index.get(namespace, ()))


def _catalog(kwargs: Mapping[str, Any]) -> IndexCatalog:
    return IndexCatalog(kwargs["policy_index"], kwargs["namespace_index"], kwargs["denial_index"])


def _expires_at(body: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return parse_time(str(body["spec"]["expiresAt"]))
    except (KeyError, TypeError, ValueError):
        return None


def _used_up(body: Mapping[str, Any]) -> bool:
    """A grant with maxUses whose uses the webhook has all counted (status.uses)."""
    limit = (body.get("spec") or {}).get("maxUses")
    uses = (body.get("status") or {}).get("uses")
    return isinstance(limit, int) and isinstance(uses, int) and uses >= limit


def _ending(body: Mapping[str, Any], workflow: Workflow) -> Ended:
    """How a deleted grant ended: as marked, else by its expiry against the clock."""
    phase = body.get("status", {}).get("phase")
    if phase == "Expired" or phase == "Revoked":
        return cast(Ended, phase)
    expires_at = _expires_at(body)
    if expires_at is not None and workflow.clock.now() >= expires_at:
        return "Expired"
    return "Revoked"


async def _drive(
    kind: str,
    meta: kopf.Meta,
    stopped: kopf.DaemonStopped,
    scheduler: Scheduler,
    poll: float,
    attempt: Callable[[], Awaitable[tuple[bool, dt.datetime | None]]],
) -> None:
    """A daemon's life: attempt, then sleep until woken, due or stopped; retry failures with
    backoff instead of dying, since the next attempt may well succeed."""
    uid = meta.get("uid") or ""
    backoff = poll
    while not stopped and not scheduler.closed:
        limit = _RESYNC
        try:
            done, due = await attempt()
            if done:
                return
            backoff = poll
            scheduler.at(uid, due)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning(
                "%s %s/%s: %s; retrying in %.1fs",
                kind,
                meta.get("namespace"),
                meta.get("name"),
                error,
                backoff,
            )
            limit, backoff = backoff, min(backoff * 2, _MAX_BACKOFF)
        await scheduler.sleep(uid, stopped.wait(), limit)


def build_registry(
    workflow: Workflow,
    scheduler: Scheduler,
    credentials: Credentials,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    poll = workflow.config.poll_interval
    requests = (GROUP, VERSION, "accessrequests")
    grants = (GROUP, VERSION, "grants")

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(credentials)

    @kopf.on.cleanup(registry=registry, id="cleanup")
    def cleanup(**_: Any) -> None:
        # kopf may still spawn a daemon for a late event while it stops, after it has stopped
        # the others; closing the scheduler lets that one exit too instead of hanging.
        scheduler.close()

    @kopf.index(GROUP, VERSION, "accesspolicies", registry=registry, id="policy_index")
    def policy_index(
        name: str, body: kopf.Body, **_: Any
    ) -> dict[str, AccessPolicy | UnreadablePolicy]:
        raw = dict(body)
        policy = wire.read(AccessPolicy, raw)
        if isinstance(policy, wire.Unreadable):
            # Kept, not dropped: requests it might govern must fail closed, not fall through
            # to a weaker policy.
            logger.warning("%s", policy)
            return {name: unreadable_policy(raw, policy)}
        return {name: policy}

    @kopf.index("v1", "namespaces", registry=registry, id="namespace_index")
    def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    # ------------------------------------------------------------------ enforcement

    webhook_configuration = workflow.config.webhook_configuration

    @kopf.index(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        registry=registry,
        id="webhook_index",
        when=lambda name, **_: name == webhook_configuration,
    )
    def webhook_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Routing]:
        return {name: routing(body)}

    # What this process last wrote per policy: the index may still hold the body from before
    # that write when another event arrives, and must not cause the same write again.
    written: dict[str, tuple[str, ...]] = {}
    # Unreadable policies have no status to compare with; their Ready=False is written once
    # per error (events of an unreadable policy must not make it write again, and again).
    invalid_written: dict[str, str] = {}
    # kopf runs the namespace and policy handlers concurrently; one pass at a time, so a pass
    # that starts while another awaits its status patch sees what that one wrote.
    enforcing = asyncio.Lock()

    def shown(policy: AccessPolicy) -> tuple[str, ...] | None:
        found = next((c for c in policy.status.conditions if c.type == CONDITION), None)
        ready = next((c for c in policy.status.conditions if c.type == READY), None)
        if found is None or ready is None:
            return None
        return (
            found.status,
            found.reason,
            found.message,
            ready.status,
            ready.reason,
            ready.message,
        )

    async def enforce(kwargs: Mapping[str, Any]) -> None:
        """Every readable policy's `Enforced` condition, written where it changed. Run on any
        event that can change it: a policy, a namespace (its labels) or the configuration."""
        async with enforcing:
            await _enforce_all(kwargs)

    async def _enforce_all(kwargs: Mapping[str, Any]) -> None:
        store = kwargs["webhook_index"].get(webhook_configuration)
        found = next(iter(store), None) if store else None
        catalog = _catalog(kwargs)
        namespaces = catalog.namespaces()
        for policy in catalog.policies():
            name = policy.metadata.name or ""
            enforced, reason, message = enforcement(
                policy, found, namespaces, configuration_name=webhook_configuration
            )
            invalid_written.pop(name, None)
            ready, ready_reason, ready_message = readiness(policy)
            now = (
                "True" if enforced else "False",
                reason,
                message,
                "True" if ready else "False",
                ready_reason,
                ready_message,
            )
            if now in (shown(policy), written.get(name)):
                continue
            if not enforced:
                logger.warning("AccessPolicy %s is not enforced: %s", name, message)
            if not ready:
                logger.warning("AccessPolicy %s is not ready: %s", name, ready_message)
            previous = policy.status.conditions
            at = workflow.clock.now()
            condition = enforced_condition((enforced, reason, message), previous, at)
            others = [c for c in previous if c.type != CONDITION]
            conditions = set_condition(
                [*others, condition],
                READY,
                "True" if ready else "False",
                ready_reason,
                ready_message,
                at,
            )
            await _write_conditions(name, conditions)
            written[name] = now
        for broken in catalog.unreadable():
            _, reason, message = readiness(broken)
            if invalid_written.get(broken.name) == message:
                continue
            logger.warning("AccessPolicy %s is not ready: %s", broken.name, message)
            condition = Condition(
                type=READY,
                status="False",
                reason=reason,
                message=message,
                last_transition_time=workflow.clock.now(),
            )
            await _write_conditions(broken.name, [condition])
            invalid_written[broken.name] = message

    async def _write_conditions(name: str, conditions: Sequence[Condition]) -> None:
        try:
            await workflow.kube.patch_status(
                "accesspolicies", "", name, {"conditions": [c.to_wire() for c in conditions]}
            )
        except ApiError as error:
            if not error.not_found:  # deleted meanwhile: nothing to report on
                raise

    @kopf.on.event(GROUP, VERSION, "accesspolicies", registry=registry, id="policy_event")
    async def policy_event(name: str, body: kopf.Body, **kwargs: Any) -> None:
        policy = wire.read(AccessPolicy, dict(body))
        if isinstance(policy, wire.Unreadable) or shown(policy) != written.get(name):
            written.pop(name, None)  # changed by someone else (or gone): decide it afresh
        await enforce(kwargs)

    @kopf.on.event("v1", "namespaces", registry=registry, id="namespace_event")
    async def namespace_event(**kwargs: Any) -> None:
        await enforce(kwargs)

    @kopf.on.event(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        registry=registry,
        id="webhook_event",
        when=lambda name, **_: name == webhook_configuration,
    )
    async def webhook_event(**kwargs: Any) -> None:
        await enforce(kwargs)

    # ------------------------------------------------------------------ requests

    @kopf.index(*requests, registry=registry, id="denial_index")
    def denial_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, Denial] | None:
        """Approvers' denials by namespace: later requests are held to them (anti-shopping)."""
        request = wire.read(AccessRequest, dict(body))
        denial = None if isinstance(request, wire.Unreadable) else denial_of(request)
        return {namespace or "": denial} if denial is not None else None

    @kopf.on.event(*requests, registry=registry, id="request_event")
    async def request_event(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        uid = meta.get("uid") or ""
        if type == "DELETED":
            scheduler.forget(uid)
            # Normally done by the deletion handler; this covers a request deleted before
            # kopf added its finalizer.
            await workflow.request_deleted(body)
            return
        phase = body.get("status", {}).get("phase")
        workflow.metrics.observe_request(meta.get("namespace") or "", meta.get("name") or "", phase)
        scheduler.wake(uid)

    @kopf.daemon(
        *requests,
        registry=registry,
        id="request_daemon",
        cancellation_polling=min(poll, 1.0),
        cancellation_backoff=0,
        backoff=poll,
    )
    async def request_daemon(
        body: kopf.Body, meta: kopf.Meta, stopped: kopf.DaemonStopped, **kwargs: Any
    ) -> None:
        async def attempt() -> tuple[bool, dt.datetime | None]:
            return False, await workflow.reconcile(body, _catalog(kwargs))

        await _drive("AccessRequest", meta, stopped, scheduler, poll, attempt)

    @kopf.on.delete(*requests, registry=registry, id="request_deleted", backoff=poll)
    async def request_deleted(body: kopf.Body, **_: Any) -> None:
        await workflow.request_deleted(body)

    # ------------------------------------------------------------------ grants

    @kopf.on.event(*grants, registry=registry, id="grant_event")
    async def grant_event(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        phase = body.get("status", {}).get("phase")
        if type == "DELETED":
            scheduler.forget(meta.get("uid") or "")
            workflow.metrics.forget_grant(namespace, name)
            if phase not in _ENDED:
                # Gone without passing the finalizer (it was removed by hand): record it now.
                await workflow.end(body, _ending(body, workflow), reason=None, delete=False)
            return
        deleting = meta.get("deletionTimestamp") is not None
        workflow.metrics.observe_grant(namespace, name, phase not in _ENDED and not deleting)
        scheduler.wake(meta.get("uid") or "")

    @kopf.daemon(
        *grants,
        registry=registry,
        id="grant_daemon",
        cancellation_polling=min(poll, 1.0),
        cancellation_backoff=0,
        backoff=poll,
    )
    async def grant_daemon(
        body: kopf.Body, meta: kopf.Meta, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        expires_at = _expires_at(body)
        if expires_at is None:
            logger.warning(
                "Grant %s/%s has no readable expiresAt", meta.get("namespace"), meta.get("name")
            )
            return

        async def attempt() -> tuple[bool, dt.datetime | None]:
            if body.get("status", {}).get("phase") in _ENDED:
                # Ended by an earlier attempt that did not get to delete it: finish.
                await workflow.end(body, _ending(body, workflow), reason=None, delete=True)
                return True, None
            if workflow.clock.now() >= expires_at:
                await workflow.end(body, "Expired", reason="expired", delete=True)
                return True, None
            if _used_up(body):
                # Every use counted by the webhook: it ends now (`end_grant` says why).
                await workflow.end(body, "Expired", reason=None, delete=True)
                return True, None
            return False, expires_at

        await _drive("Grant", meta, stopped, scheduler, poll, attempt)

    @kopf.on.delete(*grants, registry=registry, id="grant_deleted", backoff=poll)
    async def grant_deleted(body: kopf.Body, **_: Any) -> None:
        await workflow.end(body, _ending(body, workflow), reason=None, delete=False)

    return registry
