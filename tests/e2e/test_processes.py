"""The webhook and the operator, as deployed with the chart's RBAC, hit no permission errors
(runs after the stories, so their logs have seen every kind of call)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

TROUBLE = ("Forbidden", "forbidden", "Traceback", "ERROR")


def troubles(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(word in line for word in TROUBLE)]


def test_the_webhook_has_every_permission_it_uses(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.check_alive()
    assert troubles(c.webhook.tail(100_000)) == []


@pytest.mark.xfail(
    strict=True,
    reason="chart/operator mismatch: `jitgate operator` runs kopf with resource scanning on "
    "(OperatorConfig.dynamic_scanning defaults to True, no flag turns it off), so kopf lists "
    "and watches apiextensions.k8s.io customresourcedefinitions, which the chart's operator "
    "ClusterRole does not grant: 9 `403 Forbidden` ERRORs over ~54 s at every start, then "
    "`Not enough permissions to watch for resources` (CRDs installed later are not noticed)",
)
def test_the_operator_has_every_permission_it_uses(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.check_alive()
    assert troubles(c.operator.tail(100_000)) == []
