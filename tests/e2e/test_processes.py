"""The webhook and the operator, as deployed with the chart's RBAC, hit no permission errors
(runs after the stories, so their logs have seen every kind of call)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

TROUBLE = ("Forbidden", "forbidden", "Traceback", "ERROR")
# Right after CRDs are established the API server answers watches with 429 "storage is
# (re)initializing" for a moment; kopf retries those, so they are not trouble.
TRANSIENT = ("will retry", "status=429")
# A namespace being deleted refuses new objects, kopf's Events about objects in it included
# (403 "namespace NAME is being terminated"): the namespace's fate, not a missing permission.
TERMINATING = ("kopf._core.engines.posting", "is being terminated")


def troubles(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if any(word in line for word in TROUBLE)
        and not all(word in line for word in TRANSIENT)
        and not all(word in line for word in TERMINATING)
    ]


def test_the_webhook_has_every_permission_it_uses(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.check_alive()
    assert troubles(c.webhook.tail(100_000)) == []


def test_the_operator_has_every_permission_it_uses(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.check_alive()
    assert troubles(c.operator.tail(100_000)) == []
