"""Prometheus metrics of one operator: requests by phase, grants, approval time, expiry lag."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jitgate.core.api import RequestPhase

PHASES: tuple[RequestPhase, ...] = (
    "Pending",
    "Approved",
    "Denied",
    "Expired",
    "Revoked",
    "Cancelled",
)
# Approval takes human minutes to hours; expiry lag should stay within the poll interval.
_APPROVAL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class _Live(Collector):
    """Gauges read at scrape time from what the watches last saw, so they never drift."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], str] = {}
        self.grants: dict[tuple[str, str], bool] = {}  # -> still active

    def collect(self) -> Iterator[Metric]:
        by_phase = Tally(self.requests.values())
        requests = GaugeMetricFamily(
            "jitgate_operator_requests", "AccessRequests by phase.", labels=["phase"]
        )
        for phase in PHASES:
            requests.add_metric([phase], by_phase.get(phase, 0))
        requests.add_metric(["New"], by_phase.get("", 0))
        yield requests
        yield GaugeMetricFamily(
            "jitgate_operator_grants_active",
            "Grants that exist and have not been ended.",
            value=sum(self.grants.values()),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.live = _Live()
        self.registry.register(self.live)
        self.time_to_approval = Histogram(
            "jitgate_operator_time_to_approval_seconds",
            "From Pending to Approved (break-glass counts as 0).",
            buckets=_APPROVAL_BUCKETS,
            registry=self.registry,
        )
        self.expiry_lag = Histogram(
            "jitgate_operator_expiry_lag_seconds",
            "How long after expiresAt the operator ended a grant.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.transitions = Counter(
            "jitgate_operator_transitions",
            "AccessRequest phase changes made by the operator.",
            ["phase"],
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "jitgate_operator_audit_failures",
            "Audit records that could not be written (the action was not taken).",
            registry=self.registry,
        )

    def observe_request(self, namespace: str, name: str, phase: str | None) -> None:
        self.live.requests[namespace, name] = phase or ""

    def forget_request(self, namespace: str, name: str) -> None:
        self.live.requests.pop((namespace, name), None)

    def observe_grant(self, namespace: str, name: str, active: bool) -> None:
        self.live.grants[namespace, name] = active

    def forget_grant(self, namespace: str, name: str) -> None:
        self.live.grants.pop((namespace, name), None)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """Serve `/metrics` until the returned runner is cleaned up."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
