"""Prometheus metrics, one registry per app instance so tests and replicas never share counts."""

from __future__ import annotations

from bisect import bisect_left
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

# The API server's own webhook histogram starts at 5 ms; ours starts at 100 µs.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class LoopCounter(Counter):
    """A Counter written from the event loop's thread only (readers may be anywhere).

    prometheus_client guards every value with a mutex, taken on each `inc` (a third of a
    microsecond, on every review). With one writing thread and the GIL, the value needs none:
    a scrape reads the float before or after an increment. Relies on prometheus_client's
    private `_value` (its MutexValue's `_value`), pinned at 0.26.0 in requirements.lock;
    tests/webhook/test_metrics.py compares the exposition with a plain Counter's.
    """

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        if amount < 0 or exemplar:  # what the plain Counter refuses or stores
            super().inc(amount, exemplar)
            return
        self._value._value += amount


class LoopHistogram(Histogram):
    """A Histogram written from the event loop's thread only; as `LoopCounter`, without
    its two mutexes per observation (and finding the bucket by bisection). Relies on
    prometheus_client's private `_sum`, `_buckets` and `_upper_bounds` (0.26.0)."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar or amount != amount:  # an exemplar, or NaN (in no bucket): as the plain one
            super().observe(amount, exemplar)
            return
        self._sum._value += amount
        self._buckets[bisect_left(self._upper_bounds, amount)]._value += 1


class Children(Generic[M]):
    """A labelled metric's children, each looked up once: `labels()` takes a lock and builds
    its key on every call, once or twice per review. Label values come from fixed sets
    (verbs, results), so the map stays small."""

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = LoopCounter(
            "jitgate_webhook_decisions",
            "Admission decisions on protected actions and jitgate objects.",
            ["action", "result"],
            registry=r,
        )
        self.latency = LoopHistogram(
            "jitgate_webhook_decision_seconds",
            "Time from receiving an AdmissionReview to answering it, audit write included.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_latency = LoopHistogram(
            "jitgate_webhook_audit_append_seconds",
            "Time until an audit record is durable.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_failures = Counter(
            "jitgate_webhook_audit_failures", "Audit records that could not be written.", registry=r
        )
        self.malformed = Counter(
            "jitgate_webhook_malformed_reviews",
            "Request bodies refused as not being AdmissionReviews.",
            registry=r,
        )
        self.shed = Counter(
            "jitgate_webhook_shed_reviews",
            "Reviews denied at once because every decision slot stayed busy (overload).",
            ["endpoint"],
            registry=r,
        )
        self.repeats = LoopCounter(
            "jitgate_webhook_repeated_reviews",
            "Reviews of a request already decided (a DELETE validated again, kubectl exec's "
            "SPDY retry), answered as before and not recorded again.",
            ["action"],
            registry=r,
        )
        self.use_counts = Counter(
            "jitgate_webhook_grant_use_counts",
            "Uses of grants with maxUses counted at the API server, by outcome: Counted, "
            "UsedUp (denied: every use spent), NotCounted (denied: the count failed).",
            ["outcome"],
            registry=r,
        )
        self.live_reads = Counter(
            "jitgate_webhook_live_grant_reads",
            "Live reads of Grants before a 'no live grant' denial, by result: allowed (the "
            "watch had not delivered the Grant yet), still-denied, not-made (rate limit, "
            "busy, failed).",
            ["result"],
            registry=r,
        )
        self.watch_lag = Histogram(
            "jitgate_webhook_grant_watch_lag_seconds",
            "How long after a live read found a Grant the watch delivered it (at least).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_objects = Gauge(
            "jitgate_webhook_cache_objects", "Objects in the in-memory cache.", ["kind"], registry=r
        )
        self.cache_synced = Gauge(
            "jitgate_webhook_cache_synced",
            "1 once the kind's first list has completed.",
            ["kind"],
            registry=r,
        )
        self.ready = Gauge(
            "jitgate_webhook_ready", "1 when the webhook can decide protected actions.", registry=r
        )
        self.watch_lists = Counter(
            "jitgate_webhook_watch_lists", "Full lists of a watched kind.", ["kind"], registry=r
        )
        self.watch_errors = Counter(
            "jitgate_webhook_watch_errors",
            "Watch failures followed by a reconnect with backoff.",
            ["kind"],
            registry=r,
        )
        self.refused_callers = Counter(
            "jitgate_webhook_refused_callers",
            "Callers given no decision and no audit record: no client certificate on a review, "
            "one not signed by --client-ca, or a failed TLS handshake.",
            ["reason"],
            registry=r,
        )
        # The per-review counters, by their labels.
        self.decided = Children(self.decisions)
        self.repeated = Children(self.repeats)
        self.tls_reloads = Counter(
            "jitgate_webhook_tls_reloads",
            "Times the serving certificate was reloaded from its files.",
            registry=r,
        )
