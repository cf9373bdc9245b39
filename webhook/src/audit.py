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
from typing import Any, Final, Protocol

from jitgate.webhook.metrics import Metrics
from jitgate.webhook.review import AdmissionRequest
from pydantic_core import to_jsonable_python

from jitgate.audit.model import AuditRecord
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.protected import Verdict
from jitgate.core.api import GrantSpec
from jitgate.core.events import WEBHOOK_PROBE, AuditEvent, Replicas, governing_names

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


def _actor(request: AdmissionRequest) -> dict[str, Any]:
    return {"user": request.user, "groups": list(request.groups)}


def action_of(attempted: AttemptedAction, request: AdmissionRequest) -> dict[str, Any]:
    """The record's `action`, as stored (`Action`'s fields and its free-form detail)."""
    detail = attempted.detail
    action: dict[str, Any] = {"verb": attempted.verb, "resource": attempted.resource}
    _put(action, "name", attempted.name)
    _put(action, "subresource", detail.get("subresource") or request.sub_resource or None)
    _put(action, "container", attempted.container)
    if attempted.command is not None:
        action["command"] = list(attempted.command)
    replicas = detail.get("replicas")
    if isinstance(replicas, dict):
        action["replicas"] = {
            k: v for k, v in Replicas(**replicas).__dict__.items() if v is not None
        }
    # As pydantic dumps an `Action`'s extra fields: None left out, the rest made JSON-ready
    # (text, flags and whole numbers are already: an exec's stdin and tty skip the call).
    extra = {
        key: value
        for key, value in detail.items()
        if value is not None and key not in _STATED_APART
    }
    object_digest = detail.get("digest")
    if object_digest is not None:
        extra["objectDigest"] = object_digest
    if extra:
        if all(type(value) in _JSON_READY for value in extra.values()):
            action.update(extra)
        else:
            action.update(to_jsonable_python(extra))
    return action


# Detail stated by `Action`'s own fields, or renamed (`digest` is stored as `objectDigest`).
_STATED_APART: Final = frozenset(
    ("replicas", "subresource", "container", "command", "name", "digest")
)
_JSON_READY: Final = (str, bool, int)


def _put(stored: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        stored[key] = value


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
    """The record of a decision on a protected action (or one that could not be decoded).

    Built as stored (`AuditEvent.trusted`): every value comes from the parsed review, the
    cached grant or the decision, all validated already.
    """
    grant = verdict.grant
    spec = grant.spec if grant is not None else None  # a property: read once
    stored: dict[str, Any] = {
        "type": ALLOWED if verdict.allowed else DENIED,
        "actor": _actor(request),
        "admissionUID": request.uid,
        "dryRun": request.is_dry_run,
    }
    # A namespace's own delete or label change names no namespace; its actions do.
    _put(
        stored,
        "namespace",
        attempted.namespace if attempted is not None else request.namespace or None,
    )
    if attempted is not None:
        stored["action"] = action_of(attempted, request)
    else:
        action = {"verb": request.operation.lower(), "resource": request.resource.resource}
        _put(action, "name", request.name or None)
        _put(action, "subresource", request.sub_resource or None)
        stored["action"] = action
    if grant is not None:
        stored["request"] = grant.request  # the spec's accessRequest.name
        stored["grant"] = grant.name
    # Allowed: why it was asked for (the grant's copy of the request's reason; grants issued
    # before the copy existed have none). Denied: why it was denied.
    _put(
        stored,
        "reason",
        (spec.reason if spec else None)
        if verdict.allowed
        else f"{verdict.reason}: {verdict.message}",
    )
    if verdict.governing is not None or spec is not None:
        context: dict[str, Any] = {}
        if verdict.governing is not None:
            context.update(governing_names(verdict.governing.names))
        if spec is not None:
            context["approvalChainDigest"] = verdict.chain_digest
            context["breakGlass"] = spec.break_glass
            context.update(grant_facts(spec))
            if spec.max_uses is not None:
                context["maxUses"] = spec.max_uses
                if verdict.use is not None:
                    context["use"] = verdict.use
        stored["context"] = context
    # The session gateway's own stream: the session whose records follow.
    _put(stored, "session", verdict.session)
    return AuditEvent.trusted(stored)


def refusal_event(request: AdmissionRequest, reason: str, message: str) -> AuditEvent:
    """The record of a refused write to an AccessRequest or Grant (forgery attempts included)."""
    kind = request.resource.resource
    action = {"verb": request.operation.lower(), "resource": f"{kind}.{request.resource.group}"}
    _put(action, "name", request.name or None)
    _put(action, "subresource", request.sub_resource or None)
    stored: dict[str, Any] = {
        "type": DENIED,
        "actor": _actor(request),
        "action": action,
        "admissionUID": request.uid,
        "dryRun": request.is_dry_run,
        "reason": f"{reason}: {message}",
    }
    _put(stored, "namespace", request.namespace or None)
    _put(stored, "request", request.name if kind == "accessrequests" else None)
    _put(stored, "grant", request.name if kind == "grants" else None)
    return AuditEvent.trusted(stored)
