"""The webhook's side of the audit log: what each decision records, and whether it is durable.

The writer (`jitgate.audit`) chains, fsyncs and group-commits; this module builds the events
and turns a failed append into a denial and a failing `/readyz`.

Durability by record type: every record of a decision is durable before its answer is sent,
the denials included. An `action.allowed` record must be (an allow nobody can prove was
recorded is what the log exists to prevent); an `action.denied` record or a refusal could be
answered first, but a denial is evidence of an attempt, and with group commit waiting for it
costs latency only (~the fsync, shared by every concurrent review), not throughput. A review
answered from the memo of an earlier one (`jitgate.webhook.memo`) writes no record: its
request's record is already durable.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from jitgate.webhook.metrics import Metrics
from jitgate.webhook.review import AdmissionRequest

from jitgate.audit.model import AuditRecord
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.protected import Verdict
from jitgate.core.api import GrantSpec
from jitgate.core.events import WEBHOOK_PROBE, Action, Actor, AuditEvent, Replicas, governing_names

logger = logging.getLogger(__name__)

ALLOWED = "action.allowed"
DENIED = "action.denied"


class AuditSink(Protocol):
    """An audit writer: `append` returns once the record is durable, and raises otherwise."""

    async def append(self, event: AuditEvent) -> AuditRecord: ...


class AuditTrail:
    """Appends events and remembers whether the last append worked, for `/readyz`."""

    def __init__(self, sink: AuditSink, metrics: Metrics) -> None:
        self._sink = sink
        self._metrics = metrics
        self.error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None

    async def record(self, event: AuditEvent) -> AuditRecord | None:
        """The stored record once the event is durable; None (and unhealthy) when it could
        not be written."""
        started = time.perf_counter()
        try:
            stored = await self._sink.append(event)
        except Exception as error:  # any failure means "not durable"
            self.error = str(error) or type(error).__name__
            self._metrics.audit_failures.inc()
            logger.error("The audit log cannot be written: %s", self.error)
            return None
        self._metrics.audit_latency.observe(time.perf_counter() - started)
        self.error = None
        return stored

    async def probe(self) -> bool:
        """After a failure, try one record so that an unready webhook can become ready again.

        Without it nothing would ever write: an unready replica gets no admission traffic.
        The record says why it exists; a healthy log is never probed.
        """
        if self.healthy:
            return True
        probe = AuditEvent(
            type=WEBHOOK_PROBE, reason=f"readiness check after a failed write: {self.error}"
        )
        return await self.record(probe) is not None


def record_annotations(record: AuditRecord) -> dict[str, str]:
    """The auditAnnotations that name an allow's record, so the API server's own audit log
    points at it (`jitgate audit reconcile` matches the two): writer, seq and leaf hash."""
    annotations = {"writer": record.writer, "seq": str(record.seq)}
    leaf = record.leaf_hash  # computed on each read
    if leaf is not None:
        annotations["leaf"] = leaf
    return annotations


def _actor(request: AdmissionRequest) -> Actor:
    return Actor(user=request.user, groups=request.groups)


def action_of(attempted: AttemptedAction, request: AdmissionRequest) -> Action:
    detail = dict(attempted.detail)
    replicas = detail.pop("replicas", None)
    subresource = detail.pop("subresource", None) or request.sub_resource or None
    for known in ("container", "command", "name"):
        detail.pop(known, None)
    object_digest = detail.pop("digest", None)
    if object_digest is not None:
        detail["objectDigest"] = object_digest
    return Action(
        verb=attempted.verb,
        resource=attempted.resource,
        name=attempted.name,
        subresource=subresource,
        container=attempted.container,
        command=attempted.command,
        replicas=Replicas(**replicas) if isinstance(replicas, dict) else None,
        **detail,
    )


def grant_facts(spec: GrantSpec) -> dict[str, Any]:
    """Who approved the grant and the ticket it names, from the cached grant alone: one
    record then answers who did what, approved by whom, and why."""
    facts: dict[str, Any] = {
        "approvers": [a.user for a in spec.approvals if a.decision == "Approve" and a.user]
    }
    if spec.ticket:
        facts["ticket"] = spec.ticket
    return facts


def action_event(
    request: AdmissionRequest, attempted: AttemptedAction | None, verdict: Verdict
) -> AuditEvent:
    """The record of a decision on a protected action (or one that could not be decoded)."""
    grant = verdict.grant
    context: dict[str, Any] | None = None
    if verdict.governing is not None or grant is not None:
        context = {}
        if verdict.governing is not None:
            context.update(governing_names(verdict.governing.names))
        if grant is not None:
            context["approvalChainDigest"] = verdict.chain_digest
            context["breakGlass"] = grant.spec.break_glass
            context.update(grant_facts(grant.spec))
            if grant.spec.max_uses is not None:
                context["maxUses"] = grant.spec.max_uses
                if verdict.use is not None:
                    context["use"] = verdict.use
    if attempted is not None:
        action = action_of(attempted, request)
    else:
        action = Action(
            verb=request.operation.lower(),
            resource=request.resource.resource,
            name=request.name or None,
            subresource=request.sub_resource or None,
        )
    return AuditEvent(
        type=ALLOWED if verdict.allowed else DENIED,
        actor=_actor(request),
        # A namespace's own delete or label change names no namespace; its actions do.
        namespace=attempted.namespace if attempted is not None else request.namespace or None,
        action=action,
        request=grant.spec.access_request.name if grant else None,
        grant=grant.name if grant else None,
        admissionUID=request.uid,
        dryRun=request.is_dry_run,
        # Allowed: why it was asked for (the grant's copy of the request's reason; grants
        # issued before the copy existed have none). Denied: why it was denied.
        reason=(grant.spec.reason if grant else None)
        if verdict.allowed
        else f"{verdict.reason}: {verdict.message}",
        context=context,
        # The session gateway's own stream: the session whose records follow.
        session=verdict.session,
    )


def refusal_event(request: AdmissionRequest, reason: str, message: str) -> AuditEvent:
    """The record of a refused write to an AccessRequest or Grant (forgery attempts included)."""
    kind = request.resource.resource
    return AuditEvent(
        type=DENIED,
        actor=_actor(request),
        namespace=request.namespace or None,
        action=Action(
            verb=request.operation.lower(),
            resource=f"{kind}.{request.resource.group}",
            name=request.name or None,
            subresource=request.sub_resource or None,
        ),
        request=request.name if kind == "accessrequests" else None,
        grant=request.name if kind == "grants" else None,
        admissionUID=request.uid,
        dryRun=request.is_dry_run,
        reason=f"{reason}: {message}",
    )
