"""Decides and audits: an AdmissionRequest in, an `Answer` out, independent of HTTP.

The rules are the core's (`jitgate.core.admission`): protected actions are decoded
(`decode`) and decided from the cache; writes to jitgate's own kinds are checked and
stamped. Every decision on a protected action and every refused write to jitgate's kinds is
audited, once per user request (`memo`); an answer is sent only once its record is durable
(an allow is never sent otherwise). A caller the cache has no grant for gets one live read
(`livegrants`) before a denial. An action allowed under a grant with `maxUses` is counted
at the API server before it is answered (`uses`): the one call an allowed decision makes.

A request that reaches protected actions through a controller (an autoscaler, a namespace
delete, the delete of an unprotected owner of protected objects, a CronJob's history limit
cut) is resolved into them
first, reading what the cache does not hold (`lookups`); it is allowed only when every one of
them is, with one record each.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from jitgate.webhook.audit import (
    AuditSink,
    AuditTrail,
    action_event,
    record_annotations,
    refusal_event,
)
from jitgate.webhook.cache import KINDS, ClusterCache, Kind
from jitgate.webhook.config import DEFAULT_GRANT_COLLECTORS, DEFAULT_OPERATOR_USER
from jitgate.webhook.decode import (
    AutoscalerTarget,
    CronJobHistory,
    Indirect,
    NamespaceDeletion,
    NamespaceRelabel,
    Undecidable,
    decode,
    recorded,
)
from jitgate.webhook.gateway import marker
from jitgate.webhook.gateway.marker import Stream
from jitgate.webhook.livegrants import LiveGrants
from jitgate.webhook.lookups import ClusterReader, LookupFailed, NoReader
from jitgate.webhook.memo import RETRIED_VERBS, DecisionMemo, Facts, facts_of, repeat_of
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.review import AdmissionRequest, Answer, allow, deny
from jitgate.webhook.traces import request_of
from jitgate.webhook.uses import Counted, NotCounted, UseCounter, UsedUp

from jitgate.audit.model import AuditRecord
from jitgate.core import wire
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission import indirect
from jitgate.core.admission.access_requests import (
    Scope,
    check_access_request,
    missing_pods_warning,
)
from jitgate.core.admission.grant_writes import check_grant_write
from jitgate.core.admission.protected import Verdict, decide, not_counted, used_up
from jitgate.core.admission.readiness import NOT_READY, NotReady
from jitgate.core.admission.recording import STREAM_VERBS, forged_marker, through_gateway
from jitgate.core.admission.stamping import stamp
from jitgate.core.admission.writes import Identity, Write, annotations_of, as_dict, via_of
from jitgate.core.api import GROUP, AccessPolicy, AccessRequest, AccessRequestSpec
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.extensions import Extended
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.policy import Exemptions, Namespace, Policies
from jitgate.core.refusals import Refusal
from jitgate.core.requests.annotations import REVOKE_ANNOTATION
from jitgate.core.vocabulary import JOBS, PODS

logger = logging.getLogger(__name__)

# Decisions on gateway streams held for the gateway to name: a stream the API server opened
# is named within moments, so this only bounds those it never opened.
SESSION_DECISIONS_KEPT = 1024
AUDIT_DOWN = "jitgate cannot write its audit log, so the action is not allowed"
NO_LIVE_GRANT = "NoLiveGrant"
ACCESS_REQUESTS = "accessrequests"
GRANTS = "grants"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""


def jitgate_kind(request: AdmissionRequest) -> str | None:
    """`accessrequests` or `grants` when the review is about one of jitgate's kinds."""
    if request.resource.group != GROUP:
        return None
    kind = request.resource.resource
    return kind if kind in (ACCESS_REQUESTS, GRANTS) else None


def write_of(request: AdmissionRequest) -> Write:
    return Write(
        request.operation,
        Identity(request.user, request.groups, via_of(request.user_info.extra)),
        request.object,
        request.old_object,
    )


def _adds_revoke(request: AdmissionRequest) -> bool:
    """An AccessRequest write that sets the revoke annotation."""
    return REVOKE_ANNOTATION in annotations_of(request.object) and (
        REVOKE_ANNOTATION not in annotations_of(request.old_object)
    )


@dataclass(frozen=True)
class _WithLiveGrants:
    """The cache, with the grants of one namespace as a live read found them."""

    cache: ClusterCache
    grants: GrantIndex

    @property
    def synced(self) -> bool:
        return self.cache.synced

    @property
    def policies(self) -> Policies:
        return self.cache.policies

    @property
    def namespaces(self) -> Mapping[str, Mapping[str, str]]:
        return self.cache.namespaces

    def chain_digest(self, grant: IndexedGrant) -> str:
        return self.cache.chain_digest(grant)


def _size(cache: ClusterCache, kind: Kind) -> float:
    return float(cache.sizes()[kind])


def _synced(cache: ClusterCache, kind: Kind) -> float:
    return float(cache.is_synced(kind))


class AdmissionService:
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
        reader: ClusterReader | None = None,
        live_grants: LiveGrants | None = None,
        memo: DecisionMemo | None = None,
        session_key: bytes | None = None,
        use_counter: UseCounter | None = None,
        webhook_user: str | None = None,
    ) -> None:
        self.cache = cache
        self.reader: ClusterReader = reader or NoReader()
        self.live_grants = live_grants
        self.use_counter = use_counter
        self.webhook_user = webhook_user
        self.memo = memo or DecisionMemo()
        self.metrics = metrics or Metrics()
        self.audit = AuditTrail(audit, self.metrics)
        self.clock = clock
        base = exemptions or Exemptions()
        self.exemptions = Exemptions(base.users | {operator_user}, base.groups)
        self.operator_user = operator_user
        self.grant_collectors = grant_collectors
        # Checks the session gateway's markers (`jitgate.webhook.gateway.marker`).
        self.session_key = session_key
        # The records of the gateway's streams this replica allowed, until the gateway
        # names them in its session.started (`decision_of`).
        self._session_decisions: OrderedDict[str, AuditRecord] = OrderedDict()
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

    async def validate(
        self, request: AdmissionRequest, caller: str = "", trace: str | None = None
    ) -> Answer:
        """Decide a review; `caller` says who sent it (`callers.caller_of`): a repeated
        review is answered from the memo only for the caller that sent it first. `trace`:
        the trace id the API server sent it with, when trusted (`jitgate.webhook.traces`):
        the reviews of one user request are recorded once, and count one use."""
        kind = jitgate_kind(request)
        if kind == ACCESS_REQUESTS:
            return await self._validate_access_request(request)
        if kind == GRANTS:
            refusal = check_grant_write(
                write_of(request),
                operator_user=self.operator_user,
                collectors=self.grant_collectors,
                webhook_user=self.webhook_user,
            )
            return await self._answer_own_kind(request, "grant", refusal)
        return await self._validate_action(request, caller, request_of(trace, request.groups))

    async def _validate_action(
        self, request: AdmissionRequest, caller: str, trace: str | None
    ) -> Answer:
        try:
            decoded = decode(request)
        except Undecidable as error:
            if self.exemptions.covers(request.user, request.groups):
                return allow()
            undecidable = Verdict(
                False, f"jitgate cannot decide this request: {error}", "Undecidable"
            )
            return await self._answer(request, None, undecidable)
        if decoded is None:
            return allow()
        if isinstance(decoded, AttemptedAction):
            return await self._direct(request, decoded, caller, trace)
        if self.exemptions.covers(request.user, request.groups):
            return allow()  # before any read: exempt controllers cost nothing
        if not self.cache.synced:
            return await self._decide(request, [])
        try:
            attempts = await self._resolve(request, decoded)
        except LookupFailed as error:
            verdict = Verdict(False, f"jitgate cannot decide this request: {error}", "LookupFailed")
            return await self._answer(request, None, verdict)
        labels = decoded.before if isinstance(decoded, NamespaceRelabel) else None
        return await self._decide(request, attempts, labels=labels, caller=caller, trace=trace)

    async def _direct(
        self, request: AdmissionRequest, attempted: AttemptedAction, caller: str, trace: str | None
    ) -> Answer:
        """A protected action the review names itself, decided and recorded once per user
        request: a repeated review of it from the same caller is answered from the memo."""
        facts = facts_of(request, attempted)
        remembered = self.memo.recall(request.uid, facts, caller)
        if remembered is not None and not self._still_holds(remembered, attempted.namespace):
            remembered = None  # allowed under a grant revoked (or gone) since: decide afresh
        if remembered is not None:
            self.metrics.repeated(attempted.verb).inc()
            return remembered
        attempts = [attempted]
        if self._may_cascade(request, attempted):
            try:
                attempts = await self._cascade(request, attempted)
            except LookupFailed as error:
                failed = Verdict(
                    False, f"jitgate cannot decide this request: {error}", "LookupFailed"
                )
                return await self._answer(request, attempted, failed)
        # The facts serve the refusal memo too, when the direct action is the one decided.
        known = facts if len(attempts) == 1 and attempts[0] is attempted else None
        answer = await self._decide(request, attempts, caller=caller, facts=known, trace=trace)
        if self.audit.healthy:  # unrecorded: the next review of it tries to record it again
            self.memo.remember(request.uid, facts, attempted, answer, caller)
        return answer

    def _still_holds(self, answer: Answer, namespace: str) -> bool:
        """Whether a remembered answer may be given again: a denial always, an allow only
        while the grant it named is held and neither revoked nor being deleted."""
        if not answer.allowed:
            return True
        name = (answer.audit_annotations or {}).get("grant")
        held = self.cache.grants.get(namespace, name) if name else None
        return held is not None and not held.ending

    async def _resolve(self, request: AdmissionRequest, decoded: Indirect) -> list[AttemptedAction]:
        """The protected actions an indirect request amounts to (reading the cluster)."""
        match decoded:
            case AutoscalerTarget():
                current = await self.reader.replicas(
                    decoded.namespace, decoded.resource, decoded.name
                )
                scale = None
                if current is not None:  # no target yet: the autoscaler moves nothing
                    scale = indirect.autoscaler_scale(
                        decoded.namespace,
                        decoded.autoscaler,
                        decoded.resource,
                        decoded.name,
                        current=current,
                        low=decoded.low,
                        high=decoded.high,
                    )
                return [scale] if scale is not None else []
            case NamespaceDeletion():
                resources = self._deletable(request, decoded.name)
                if not resources:
                    return []
                objects = await self.reader.objects(decoded.name, resources)
                return indirect.namespace_deletes(decoded.name, objects)
            case NamespaceRelabel():
                lost = indirect.protection_lost(
                    self.cache.policies.all(), decoded.name, decoded.before, decoded.after
                )
                return [indirect.unprotect(decoded.name, lost, decoded.before)] if lost else []
            case CronJobHistory():
                if JOBS not in self._deletable(request, decoded.namespace):
                    return []  # no policy protects the Jobs it removes
                jobs = await self.reader.history_jobs(decoded.namespace)
                return indirect.history_deletes(decoded.namespace, decoded.name, decoded.cuts, jobs)

    def _deletable(self, request: AdmissionRequest, namespace: str) -> tuple[str, ...]:
        labels = self.cache.namespaces.get(namespace) or {}
        return indirect.deletable_resources(
            self.cache.policies.by_name.values(),
            Namespace(namespace, labels),
            request.user,
            request.groups,
        )

    def _may_cascade(self, request: AdmissionRequest, attempted: AttemptedAction) -> bool:
        """Whether a delete the policies do not protect could still remove protected
        objects through the garbage collector (its dependents)."""
        if attempted.verb != "delete" or request.sub_resource:
            return False
        if attempted.detail.get("propagationPolicy") == "Orphan":
            return False  # the dependents stay; only the owner goes
        if attempted.detail.get("orphanDependents") is True:
            return False
        if self.exemptions.covers(request.user, request.groups) or not self.cache.synced:
            return False  # decided (or refused as not ready) like any delete
        protected = self._deletable(request, attempted.namespace)
        return bool(protected) and attempted.resource not in protected

    async def _cascade(
        self, request: AdmissionRequest, attempted: AttemptedAction
    ) -> list[AttemptedAction]:
        """The deletes of protected dependents the owner's delete sets off."""
        uid = ((request.old_object or {}).get("metadata") or {}).get("uid")
        if not isinstance(uid, str) or not uid:
            return []  # owner references name a uid: an object without one owns nothing
        protected = self._deletable(request, attempted.namespace)
        listed = tuple(dict.fromkeys((*protected, *indirect.INTERMEDIATE_OWNERS)))
        objects = await self.reader.objects(attempted.namespace, listed)
        owner = f"{attempted.resource}/{attempted.name}"
        return indirect.cascade_deletes(attempted.namespace, owner, uid, objects, protected)

    async def _decide(
        self,
        request: AdmissionRequest,
        attempts: list[AttemptedAction],
        *,
        labels: dict[str, str] | None = None,
        caller: str = "",
        facts: Facts | None = None,
        trace: str | None = None,
    ) -> Answer:
        """Allowed when every attempt is; the first one refused is the answer. Each allowed
        attempt is recorded (and must be durable) before the request is allowed. `facts` are
        the lone attempt's (`memo.facts_of`), when the caller has them already; `trace` the
        user request's trace id, when trusted."""
        if not attempts and not self.cache.synced:
            # An indirect request before the cache is known: refused like any protected one.
            not_ready = Verdict(False, f"{NOT_READY}; retry in a moment", "NotReady")
            return await self._answer(request, None, not_ready)
        allowed: list[tuple[AttemptedAction, Verdict]] = []
        for attempted in attempts:
            verdict = await self._verdict(request, attempted, labels)
            if verdict is None:
                continue
            if not verdict.allowed:
                return await self._answer(request, attempted, verdict, facts=facts)
            allowed.append((attempted, verdict))
        if not allowed:
            return allow()
        # What makes another review the same user request (`memo.repeat_of`), once each.
        repeats = [repeat_of(request, attempted, caller, facts, trace) for attempted, _ in allowed]
        for index, (attempted, verdict) in enumerate(allowed):
            if verdict.grant is None or verdict.grant.terms.max_uses is None:
                continue  # no use to count: not even a coroutine to make
            if self._allowed_before(repeats[index], verdict) is not None:
                continue  # the same user request again: its use was counted when first allowed
            counted = await self._count_use(request, attempted, verdict)
            if not counted.allowed:
                return await self._answer(request, attempted, counted, facts=facts)
            allowed[index] = (attempted, counted)
        answer = allow()
        for (attempted, verdict), repeat in zip(allowed, repeats, strict=True):
            answer = await self._answer(request, attempted, verdict, facts=facts, repeat=repeat)
            if not answer.allowed:
                return answer
        return answer

    async def _verdict(
        self,
        request: AdmissionRequest,
        attempted: AttemptedAction,
        labels: dict[str, str] | None,
    ) -> Verdict | None:
        session: str | None = None
        extra = request.user_info.extra
        # Without the marker's key in `extra` the check finds no marker: skip building its stream.
        if attempted.verb in STREAM_VERBS and extra and marker.EXTRA_KEY in extra:
            stream = Stream(
                request.user,
                attempted.verb,
                attempted.namespace,
                attempted.name,
                attempted.container or "",
            )
            found = marker.check(self.session_key, extra, stream, self.clock.now())
            if isinstance(found, marker.Forged):
                return forged_marker(attempted, found.problem)
            session = found.session if found is not None else None
        verdict = await self.verdict(request.user, request.groups, attempted, labels=labels)
        return through_gateway(attempted, verdict, session=session)

    async def verdict(
        self,
        user: str,
        groups: tuple[str, ...],
        attempted: AttemptedAction,
        *,
        labels: dict[str, str] | None = None,
    ) -> Verdict | None:
        """The decision on `attempted` by `user` (nothing recorded): the cache's, or a live
        read's when the cache has no grant for it. The session gateway asks this too."""
        verdict = decide(
            attempted,
            user,
            groups,
            cache=self.cache,
            exemptions=self.exemptions,
            now=self.clock.now(),
            labels=labels,
        )
        if verdict is None or verdict.reason != NO_LIVE_GRANT or self.live_grants is None:
            return verdict
        # The watch may not have delivered a Grant created a moment ago: ask the API server.
        live = await self.live_grants.in_namespace(attempted.namespace, user)
        if live is None:
            self.metrics.live_reads.labels("not-made").inc()
            return verdict
        # What was read still exists, but may be revoked: the read must not undo a revoke.
        live.revocations = self.cache.revocations
        second = decide(
            attempted,
            user,
            groups,
            cache=_WithLiveGrants(self.cache, live),
            exemptions=self.exemptions,
            now=self.clock.now(),
            labels=labels,
        )
        if second is None or not second.allowed:
            self.metrics.live_reads.labels("still-denied").inc()
            return verdict
        self.metrics.live_reads.labels("allowed").inc()
        assert second.grant is not None
        self.cache.await_grants([(second.grant.namespace, second.grant.name)])
        return second

    async def _count_use(
        self, request: AdmissionRequest, attempted: AttemptedAction, verdict: Verdict
    ) -> Verdict:
        """An allowed action under a grant with maxUses: its use counted at the API server
        (`uses`), the one API call an allowed decision may make. Other grants: as decided.
        The API server's later reviews of the same user request are answered from the memo
        (`_decide`) and count none."""
        grant = verdict.grant
        if grant is None or grant.spec.max_uses is None:
            return verdict
        if self.use_counter is None:
            return not_counted(attempted, verdict, "jitgate has no connection to the API server")
        outcome = await self.use_counter.count(
            grant.namespace, grant.name, request.uid, dry_run=request.is_dry_run
        )
        self.metrics.use_counts.labels(type(outcome).__name__).inc()
        match outcome:
            case Counted():
                return verdict._replace(use=outcome.number)
            case UsedUp():
                return used_up(attempted, verdict, grant.spec.max_uses)
            case NotCounted():
                return not_counted(attempted, verdict, outcome.why)

    async def _answer(
        self,
        request: AdmissionRequest,
        attempted: AttemptedAction | None,
        verdict: Verdict,
        *,
        facts: Facts | None = None,
        repeat: Facts | None = None,
    ) -> Answer:
        """Record the decision (an allow durably before it is given) and answer it. An allow
        with `repeat` (`memo.repeat_of`) is answered with the same user request's earlier
        answer when the same Grant allowed it within its window, and unrecorded."""
        action = attempted.verb if attempted is not None else request.operation.lower()
        if (
            not verdict.allowed
            and attempted is not None
            and attempted.verb in RETRIED_VERBS
            and self.memo.refused_just_now(
                facts or facts_of(request, attempted), attempted, verdict.message
            )
        ):
            # kubectl exec trying again over SPDY: refused again, already recorded.
            self.metrics.repeated(action).inc()
            return deny(verdict.message)
        earlier = self._allowed_before(repeat, verdict)
        if earlier is not None:
            # The API server validating one user request again: allowed afresh by the same
            # Grant, answered with the request's one record.
            self.metrics.repeated(action).inc()
            return earlier
        stated = recorded(attempted) if attempted is not None else None
        durable = await self.audit.record(action_event(request, stated, verdict))
        if verdict.allowed and not durable:
            self.metrics.decided(action, "denied").inc()
            return deny(AUDIT_DOWN, "InternalError")
        self.metrics.decided(action, "allowed" if verdict.allowed else "denied").inc()
        if not verdict.allowed:
            return deny(verdict.message)
        grant = verdict.grant
        assert grant is not None
        assert durable is not None
        answer = allow(
            audit_annotations={
                "grant": grant.name,
                "request": grant.spec.access_request.name,
                **record_annotations(durable),
            },
            warnings=(verdict.warning,) if verdict.warning else (),
        )
        if repeat is not None:
            self.memo.remember_allowed(repeat, (grant.namespace, grant.name, grant.uid), answer)
        if verdict.session is not None:
            self._session_decisions[verdict.session] = durable
            while len(self._session_decisions) > SESSION_DECISIONS_KEPT:
                self._session_decisions.popitem(last=False)
        return answer

    def _allowed_before(self, repeat: Facts | None, verdict: Verdict) -> Answer | None:
        """The answer given to the same user request (`repeat`, `memo.repeat_of`) within its
        window, when this fresh allow is by the same Grant."""
        grant = verdict.grant
        if repeat is None or grant is None:
            return None
        return self.memo.allowed_just_now(repeat, (grant.namespace, grant.name, grant.uid))

    def decision_of(self, session: str) -> AuditRecord | None:
        """The `action.allowed` record that let the session gateway's `session` open, when
        this replica decided it (and forgets it); None when another replica did (`jitgate
        audit sessions` finds it there by the session id it carries)."""
        return self._session_decisions.pop(session, None)

    def _policy(self, name: str) -> AccessPolicy | None:
        if not self.cache.is_synced("accesspolicies"):
            raise NotReady()
        return self.cache.policies.by_name.get(name)

    def _scope(self, namespace: str) -> Scope:
        if not (self.cache.is_synced("accesspolicies") and self.cache.is_synced("namespaces")):
            raise NotReady()
        labels = self.cache.namespaces.get(namespace)
        if labels is None and self.cache.policies.any_selector:
            raise NotReady()  # a namespace the watch has not delivered yet: its labels matter
        return Scope(self.cache.policies, Namespace(namespace, labels or {}))

    async def _validate_access_request(self, request: AdmissionRequest) -> Answer:
        write = write_of(request)
        try:
            extended = await self._extended(request)
        except LookupFailed as error:
            refused = Refusal(
                f"jitgate cannot check the request this one extends: {error}; retry in a moment",
                "LookupFailed",
            )
            return await self._answer_own_kind(request, "accessrequest", refused)
        refusal = check_access_request(
            write,
            operator_user=self.operator_user,
            policy=self._policy,
            scope=self._scope,
            now=self.clock.now(),
            extended=extended,
        )
        answer = await self._answer_own_kind(request, "accessrequest", refusal)
        if answer.allowed and _adds_revoke(request):
            # Before the write is stored: from here on this replica admits nothing under the
            # grant, so nothing is admitted after `kubectl jit revoke` has its answer.
            meta = as_dict(request.object).get("metadata") or {}
            self.cache.revoke_admitted(request.namespace, request.name, str(meta.get("uid") or ""))
        if not answer.allowed or request.operation != "CREATE":
            return answer
        warning = await self._missing_pods(request)
        return allow(warnings=(warning,)) if warning else answer

    async def _extended(self, request: AdmissionRequest) -> Extended | None:
        """For a new extension: the request it names, read from the API server, and that
        request's grant from the cache (`jitgate.core.extensions`)."""
        if request.operation != "CREATE":
            return None
        spec = as_dict(as_dict(request.object).get("spec"))
        name = as_dict(spec.get("extends")).get("name")
        if not isinstance(name, str) or not name:
            return None
        raw = await self.reader.access_request(request.namespace, name)
        earlier = wire.read(AccessRequest, raw) if raw is not None else None
        if not isinstance(earlier, AccessRequest):
            return Extended(name, None, None)
        reference = earlier.status.grant
        user = earlier.spec.requester.user if earlier.spec.requester else ""
        grant = next(
            (
                g
                for g in self.cache.grants.for_user(request.namespace, user)
                if reference is not None
                and g.name == reference.name
                and g.spec.access_request.uid == earlier.metadata.uid
            ),
            None,
        )
        return Extended(name, earlier, grant.spec if grant else None)

    async def _missing_pods(self, request: AdmissionRequest) -> str | None:
        """A warning about named pods that do not exist. Only advice: when the pods cannot be
        read (in time), the request is admitted without it rather than held up or refused."""
        spec = AccessRequestSpec.model_validate(as_dict(request.object).get("spec"))
        if not any(action.effective_resource == PODS and action.names for action in spec.actions):
            return None
        try:
            pods = await self.reader.pod_names(request.namespace)
        except LookupFailed as error:
            logger.info("no pod-name warning for an AccessRequest: %s", error)
            return None
        return missing_pods_warning(spec, request.namespace, pods)

    async def _answer_own_kind(
        self, request: AdmissionRequest, action: str, refusal: Refusal | None
    ) -> Answer:
        if refusal is None:
            self.metrics.decided(action, "allowed").inc()
            return allow()
        self.metrics.decided(action, "denied").inc()
        # Refusals are evidence (forged identities, edited approvals); a failed write of the
        # record does not change the answer, which is already a denial.
        await self.audit.record(refusal_event(request, refusal.reason, refusal.message))
        return deny(refusal.message)

    # /mutate

    async def mutate(self, request: AdmissionRequest) -> Answer:
        if jitgate_kind(request) != ACCESS_REQUESTS:
            return allow()
        patch = stamp(write_of(request), self.clock.now())
        if isinstance(patch, Refusal):
            return await self._answer_own_kind(request, "accessrequest", patch)
        return allow(patch=patch) if patch else allow()
