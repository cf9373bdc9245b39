"""The webhook's decisions, independent of HTTP: an AdmissionRequest in, an `Answer` out.

Protected actions are decided from the cache (`decisions.decide`); jitgate's own kinds by
`accessrequests`. Every decision on a protected action and every refused write to jitgate's
kinds is audited; an allowed action is answered only once its record is durable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from jitgate.webhook import accessrequests as ar
from jitgate.webhook.audit import AuditSink, AuditTrail, action_event, refusal_event
from jitgate.webhook.cache import KINDS, ClusterCache, Kind
from jitgate.webhook.config import DEFAULT_GRANT_COLLECTORS, DEFAULT_OPERATOR_USER
from jitgate.webhook.decisions import NOT_READY, Verdict, decide
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.protected import Undecidable, decode
from jitgate.webhook.review import AdmissionRequest, Answer, allow, deny

from jitgate.core.api import AccessPolicy
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.policy import Exemptions
from jitgate.core.refusals import Refusal

logger = logging.getLogger(__name__)

AUDIT_DOWN = "jitgate cannot write its audit log, so the action is not allowed"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""


def _size(cache: ClusterCache, kind: Kind) -> float:
    return float(cache.sizes()[kind])


def _synced(cache: ClusterCache, kind: Kind) -> float:
    return float(cache.is_synced(kind))


class AdmissionController:
    """Everything one webhook process decides with; shared by all its requests."""

    def __init__(
        self,
        *,
        cache: ClusterCache,
        audit: AuditSink,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
        exemptions: Exemptions | None = None,
        operator_user: str = DEFAULT_OPERATOR_USER,
        grant_collectors: frozenset[str] = DEFAULT_GRANT_COLLECTORS,
    ) -> None:
        self.cache = cache
        self.metrics = metrics or Metrics()
        self.audit = AuditTrail(audit, self.metrics)
        self.clock = clock
        base = exemptions or Exemptions()
        self.exemptions = Exemptions(base.users | {operator_user}, base.groups)
        self.operator_user = operator_user
        self.grant_collectors = grant_collectors
        self._register_gauges()

    def _register_gauges(self) -> None:
        cache = self.cache
        for kind in KINDS:
            self.metrics.cache_objects.labels(kind).set_function(partial(_size, cache, kind))
            self.metrics.cache_synced.labels(kind).set_function(partial(_synced, cache, kind))
        self.metrics.ready.set_function(lambda: float(self.readiness().ready))

    async def check_readiness(self) -> Readiness:
        """`readiness()`, after giving a failed audit log the chance to prove it works again."""
        if self.cache.synced:
            await self.audit.probe()
        return self.readiness()

    def readiness(self) -> Readiness:
        if not self.cache.synced:
            missing = [kind for kind in KINDS if not self.cache.is_synced(kind)]
            return Readiness(False, f"{NOT_READY} ({', '.join(missing)} not listed yet)")
        if not self.audit.healthy:
            return Readiness(False, f"jitgate cannot write its audit log: {self.audit.error}")
        return Readiness(True)

    # /validate

    async def validate(self, request: AdmissionRequest) -> Answer:
        kind = ar.jitgate_kind(request)
        if kind == ar.ACCESS_REQUESTS:
            return await self._validate_access_request(request)
        if kind == ar.GRANTS:
            refusal = ar.check_grant_write(
                request, operator_user=self.operator_user, collectors=self.grant_collectors
            )
            return await self._answer_own_kind(request, "grant", refusal)
        return await self._validate_action(request)

    async def _validate_action(self, request: AdmissionRequest) -> Answer:
        attempted = None
        try:
            attempted = decode(request)
        except Undecidable as error:
            if self.exemptions.covers(request.user, request.groups):
                return allow()
            verdict: Verdict | None = Verdict(
                False, f"jitgate cannot decide this request: {error}", "Undecidable"
            )
        else:
            if attempted is None:
                return allow()
            verdict = decide(
                attempted,
                request.user,
                request.groups,
                cache=self.cache,
                exemptions=self.exemptions,
                now=self.clock.now(),
            )
            if verdict is None:
                return allow()
        assert verdict is not None
        action = attempted.verb if attempted is not None else request.operation.lower()
        durable = await self.audit.record(action_event(request, attempted, verdict))
        if verdict.allowed and not durable:
            self.metrics.decisions.labels(action, "denied").inc()
            return deny(AUDIT_DOWN, "InternalError")
        self.metrics.decisions.labels(action, "allowed" if verdict.allowed else "denied").inc()
        if not verdict.allowed:
            return deny(verdict.message)
        grant = verdict.grant
        assert grant is not None
        return allow(
            audit_annotations={"grant": grant.name, "request": grant.spec.access_request.name},
            warnings=(verdict.warning,) if verdict.warning else (),
        )

    def _policy(self, name: str) -> AccessPolicy | None:
        if not self.cache.is_synced("accesspolicies"):
            raise ar.NotReady()
        return self.cache.policies.by_name.get(name)

    async def _validate_access_request(self, request: AdmissionRequest) -> Answer:
        try:
            refusal = ar.check_access_request(
                request, operator_user=self.operator_user, policy=self._policy, now=self.clock.now()
            )
        except ar.NotReady:
            refusal = Refusal(f"{NOT_READY}; retry in a moment", "NotReady")
        return await self._answer_own_kind(request, "accessrequest", refusal)

    async def _answer_own_kind(
        self, request: AdmissionRequest, action: str, refusal: Refusal | None
    ) -> Answer:
        if refusal is None:
            self.metrics.decisions.labels(action, "allowed").inc()
            return allow()
        self.metrics.decisions.labels(action, "denied").inc()
        # Refusals are evidence (forged identities, edited approvals); a failed write of the
        # record does not change the answer, which is already a denial.
        await self.audit.record(refusal_event(request, refusal.reason, refusal.message))
        return deny(refusal.message)

    # /mutate

    async def mutate(self, request: AdmissionRequest) -> Answer:
        patch = ar.stamp(request, self.clock.now())
        if isinstance(patch, Refusal):
            return await self._answer_own_kind(request, "accessrequest", patch)
        return allow(patch=patch) if patch else allow()
