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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf
from jitgate.operator.kube import Credentials, connection_info
from jitgate.operator.scheduler import Scheduler
from jitgate.operator.workflow import Workflow
from pydantic import ValidationError

from jitgate.clock import parse_time
from jitgate.models import GROUP, VERSION, AccessPolicy

logger = logging.getLogger("jitgate.operator")

_ENDED = ("Expired", "Revoked")
_RESYNC = 300.0  # seconds: look again even when nothing woke the daemon
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class IndexCatalog:
    policy_index: kopf.Index[str, AccessPolicy]
    namespace_index: kopf.Index[str, dict[str, str]]

    def policies(self) -> Sequence[AccessPolicy]:
        return [policy for store in self.policy_index.values() for policy in store]

    def labels(self, namespace: str) -> Mapping[str, str]:
        store = self.namespace_index.get(namespace)
        return next(iter(store), {}) if store else {}


def _catalog(kwargs: Mapping[str, Any]) -> IndexCatalog:
    return IndexCatalog(kwargs["policy_index"], kwargs["namespace_index"])


def _expires_at(body: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return parse_time(str(body["spec"]["expiresAt"]))
    except (KeyError, TypeError, ValueError):
        return None


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

    @kopf.index(GROUP, VERSION, "accesspolicies", registry=registry, id="policy_index")
    def policy_index(name: str, body: kopf.Body, **_: Any) -> dict[str, AccessPolicy]:
        try:
            return {name: AccessPolicy.model_validate(dict(body))}
        except ValidationError as error:
            logger.warning("AccessPolicy %s is invalid and ignored: %s", name, error)
            return {}

    @kopf.index("v1", "namespaces", registry=registry, id="namespace_index")
    def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    # ------------------------------------------------------------------ requests

    @kopf.on.event(*requests, registry=registry, id="request_event")
    def request_event(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        uid = meta.get("uid") or ""
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if type == "DELETED":
            scheduler.forget(uid)
            workflow.forget(uid)
            workflow.metrics.forget_request(namespace, name)
            return
        workflow.metrics.observe_request(namespace, name, body.get("status", {}).get("phase"))
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
        uid = meta.get("uid") or ""
        backoff = poll
        while not stopped:
            limit = _RESYNC
            try:
                due = await workflow.reconcile(body, _catalog(kwargs))
                backoff = poll
                scheduler.at(uid, due)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the daemon: the next attempt may well succeed
                logger.warning(
                    "AccessRequest %s/%s: %s; retrying in %.1fs",
                    meta.get("namespace"),
                    meta.get("name"),
                    error,
                    backoff,
                )
                limit, backoff = backoff, min(backoff * 2, _MAX_BACKOFF)
            await scheduler.sleep(uid, stopped.wait(), limit)

    @kopf.on.delete(*requests, registry=registry, id="request_deleted", backoff=poll)
    async def request_deleted(body: kopf.Body, **_: Any) -> None:
        await workflow.request_deleted(body)

    # ------------------------------------------------------------------ grants

    @kopf.on.event(*grants, registry=registry, id="grant_event")
    def grant_event(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if type == "DELETED":
            scheduler.forget(meta.get("uid") or "")
            workflow.metrics.forget_grant(namespace, name)
            return
        phase = body.get("status", {}).get("phase")
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
        uid = meta.get("uid") or ""
        expires_at = _expires_at(body)
        if expires_at is None:
            logger.warning(
                "Grant %s/%s has no readable expiresAt", meta.get("namespace"), meta.get("name")
            )
            return
        backoff = poll
        while not stopped:
            limit = _RESYNC
            phase = body.get("status", {}).get("phase")
            try:
                if phase in _ENDED:
                    # Ended by an earlier attempt that did not get to delete it: finish.
                    await workflow.end(body, phase, reason=None, delete=True)
                    return
                if workflow.clock.now() >= expires_at:
                    await workflow.end(body, "Expired", reason="expired", delete=True)
                    return
                scheduler.at(uid, expires_at)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "Grant %s/%s: %s; retrying in %.1fs",
                    meta.get("namespace"),
                    meta.get("name"),
                    error,
                    backoff,
                )
                limit, backoff = backoff, min(backoff * 2, _MAX_BACKOFF)
            await scheduler.sleep(uid, stopped.wait(), limit)

    @kopf.on.delete(*grants, registry=registry, id="grant_deleted", backoff=poll)
    async def grant_deleted(body: kopf.Body, **_: Any) -> None:
        phase = body.get("status", {}).get("phase")
        expires_at = _expires_at(body)
        if phase in _ENDED:
            kind = phase
        elif expires_at is not None and workflow.clock.now() >= expires_at:
            kind = "Expired"
        else:
            kind = "Revoked"
        await workflow.end(body, kind, reason=None, delete=False)

    return registry
