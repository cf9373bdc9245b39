"""A caller the grant index has no grant for gets one bounded live read before a denial.

The service here decides from a cache no watch feeds (a watch that has not caught up yet),
and reads Grants live from the emulator through the webhook's own reader.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.livegrants import LiveGrants
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.review import parse_review
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.watch import read_grants
from support.clocks import NOW

from jitgate.audit.connect import open_audit_writer
from jitgate.core.clock import ManualClock

GRANTS = "grants.jitgate.dev"
EXEC_LS = {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}


def live_reads(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "jitgate_webhook_live_grant_reads_total", {"result": result}
    )
    return value or 0.0


@pytest.fixture
async def service(
    cluster: Any,
    api_client: kubernetes.client.ApiClient,
    lagging_cache: ClusterCache,
    tmp_path: Path,
) -> AsyncIterator[AdmissionService]:
    clock = ManualClock(NOW)
    async with open_audit_writer(
        f"file://{tmp_path}/audit", writer_id="live", clock=clock
    ) as audit:
        yield AdmissionService(
            cache=lagging_cache,
            audit=audit,
            clock=clock,
            # A frozen clock for the token bucket: two reads, and no refill during the test.
            # A generous read timeout: the emulator shares a loaded machine with other tests.
            live_grants=LiveGrants(
                functools.partial(read_grants, api_client),
                rate=2.0,
                timeout=10.0,
                monotonic=lambda: 0.0,
            ),
        )


async def decide(service: AdmissionService, review: dict[str, Any]) -> Any:
    return await service.validate(parse_review(json.dumps(review).encode()))


async def test_an_action_right_after_its_grant_is_allowed_before_the_watch_delivers_it(
    cluster: Any, service: AdmissionService, reviews: Any
) -> None:
    assert not (await decide(service, reviews.exec())).allowed
    assert live_reads(service.metrics, "still-denied") == 1
    cluster.create(GRANTS, reviews.grant(actions=[EXEC_LS]), "prod")
    answer = await decide(service, reviews.exec())
    assert answer.allowed
    annotations = answer.audit_annotations or {}
    assert {k: annotations[k] for k in ("grant", "request", "writer", "seq")} == {
        "grant": "fix-web-0-x7k2",
        "request": "fix-web-0",
        "writer": "live",
        "seq": "2",  # after the first exec's denial
    }
    assert annotations["leaf"].startswith("sha256:")
    assert live_reads(service.metrics, "allowed") == 1
    # Read for that decision only: the cache still waits for its watch.
    assert not service.cache.grants.for_user("prod", "alice")


async def test_live_reads_are_rate_limited_and_fail_closed(
    cluster: Any, service: AdmissionService, reviews: Any
) -> None:
    cluster.create(GRANTS, reviews.grant(actions=[EXEC_LS], user="bob"), "prod")
    for command in (["a"], ["b"], ["c"], ["d"]):  # a burst of two reads, then none
        assert not (await decide(service, reviews.exec(command=command))).allowed
    assert live_reads(service.metrics, "still-denied") == 2
    assert live_reads(service.metrics, "not-made") == 2


async def test_one_caller_flooding_denied_attempts_cannot_starve_another(
    cluster: Any, service: AdmissionService, api_client: kubernetes.client.ApiClient, reviews: Any
) -> None:
    """mallory's unauthorised attempts spend mallory's own reads; alice, acting the moment her
    grant exists, still gets the read that finds it."""
    service.live_grants = LiveGrants(
        functools.partial(read_grants, api_client),
        rate=10.0,
        per_user_rate=2.0,
        timeout=10.0,
        monotonic=lambda: 0.0,
    )
    for command in (["a"], ["b"], ["c"], ["d"], ["e"]):
        assert not (await decide(service, reviews.exec(user="mallory", command=command))).allowed
    assert live_reads(service.metrics, "still-denied") == 2
    assert live_reads(service.metrics, "not-made") == 3
    cluster.create(GRANTS, reviews.grant(actions=[EXEC_LS]), "prod")
    assert (await decide(service, reviews.exec())).allowed
    assert live_reads(service.metrics, "allowed") == 1


async def test_the_live_read_asks_for_the_callers_grants_only(
    cluster: Any, service: AdmissionService, api_client: kubernetes.client.ApiClient, reviews: Any
) -> None:
    """Hundreds of other users' Grants in the namespace (more than a page of the read holds)
    are not read at all: a busy namespace cannot slow the read past its timeout. The
    caller's, last in the API server's order, still counts."""
    returned: list[int] = []

    def read(namespace: str, user: str, limit: int, timeout: float) -> list[dict[str, Any]]:
        items = read_grants(api_client, namespace, user, limit, timeout)
        returned.append(len(items))
        return items

    service.live_grants = LiveGrants(read, rate=2.0, timeout=10.0, monotonic=lambda: 0.0)
    for i in range(520):
        other = reviews.grant(actions=[EXEC_LS], user=f"user-{i:03}")
        other["metadata"]["name"] = f"a-{i:03}"
        cluster.create(GRANTS, other, "prod")
    mine = reviews.grant(actions=[EXEC_LS])
    mine["metadata"]["name"] = "zz-alice"
    cluster.create(GRANTS, mine, "prod")
    assert (await decide(service, reviews.exec())).allowed
    assert returned == [1]
    assert live_reads(service.metrics, "allowed") == 1
