"""No false denial right after a grant exists: a Grant created and acted on at once.

The webhook's grant cache follows the API server through a watch, which trails it by
milliseconds; before a "no live grant" denial the webhook reads the namespace's Grants live.
Each race creates a Grant (as the operator does) and at once sends the action it allows, a
server-side dry-run delete of its pod, so nothing is deleted and every race is independent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from e2e import processes
from support import objects

from jitgate.core.clock import SYSTEM_CLOCK

pytestmark = [pytest.mark.apiserver]

RACES = 100  # bounded; `make bench` runs the larger count
GRANTS = "/apis/jitgate.dev/v1alpha1/namespaces/prod/grants"


def test_an_action_right_after_its_grant_is_never_falsely_denied(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    pods = [f"raced-{i}" for i in range(RACES)]
    c.create_pods("prod", *pods)
    now = SYSTEM_CLOCK.now()
    denied = []
    for i, pod in enumerate(pods):
        grant = objects.grant(
            f"raced-{i}",
            user="alice",
            actions=[{"verb": "delete", "resource": "pods", "names": [pod]}],
            not_before=now - dt.timedelta(minutes=1),
            expires_at=now + dt.timedelta(minutes=10),
            request=f"raced-{i}",
            approvals=[objects.approval()],
        )
        status, body = c.api.request("POST", GRANTS, who="jitgate-operator", body=grant)
        assert status == 201, body
        status, body = c.api.request(
            "DELETE", f"/api/v1/namespaces/prod/pods/{pod}?dryRun=All", who="alice"
        )
        if status != 200:
            denied.append((pod, status, body))
    assert denied == []
    assert c.get("pod", pods[0], "prod") is not None  # dry runs: nothing was deleted
    metrics = processes.https_get(f"{c.webhook_url}/metrics", c.api.ca_file).body
    rescued = [
        line for line in metrics.splitlines()
        if line.startswith('jitgate_webhook_live_grant_reads_total{result="allowed"}')
    ]  # fmt: skip
    print(f"{RACES} create-then-act races, no false denial; live reads that allowed: {rescued}")
