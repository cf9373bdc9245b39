"""Schedules and autoApprove rules on the real API server (issue 16, threat model 4.18-4.19).

A policy whose only window is tomorrow (UTC) is closed now: `kubectl exec` is denied with the
window and when it opens, and a request is refused. A rule of the chart's `production` policy,
scoped to this test's namespace, approves alice's `ls` without a person: the exec runs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from e2e import manifests

from jitgate.core.api import WEEKDAYS

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

RULED, CLOSED = "auto-ok", "closed-window"
POLICIES = "accesspolicy.jitgate.dev"
RULE = {
    "name": "e2e-ls",
    "expression": f"request.namespace == '{RULED}' && request.actions.all(a, a.command == ['ls'])",
}


def namespace(name: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": manifests.PROTECTED_LABEL},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": name},
        },
    ]


def closed_policy(tomorrow: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": {"name": CLOSED},
        "spec": {
            "namespaces": {"names": [CLOSED]},
            "actions": ["exec"],
            "approvers": {"groups": ["sre"]},
            "schedule": {"timeZone": "UTC", "windows": [{"days": [tomorrow]}]},
        },
    }


def test_a_closed_window_denies_exec_and_a_rule_approves_without_a_person(
    jitgate_cluster: Any,
) -> None:
    c = jitgate_cluster
    now = dt.datetime.now(dt.UTC)
    if now.hour == 23 and now.minute >= 55:
        pytest.skip("too close to midnight UTC: the window under test opens at midnight")
    tomorrow = WEEKDAYS[(now.weekday() + 1) % 7]
    c.apply(
        "admin",
        *namespace(RULED),
        *namespace(CLOSED),
        *manifests.persona_rbac([RULED, CLOSED]),
        closed_policy(tomorrow),
    )
    c.run_pods(RULED, "web-0")
    c.create_pods(CLOSED, "web-0")
    patched = c.kubectl(
        "admin", "patch", POLICIES, manifests.POLICY, "--type=merge",
        "-p", json.dumps({"spec": {"autoApprove": {"rules": [RULE]}}}),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    try:
        # The window: exec denied, saying which window and when it opens next.
        refused = c.exec("alice", CLOSED, "web-0", "ls")
        assert refused.returncode != 0
        opens = (now + dt.timedelta(days=1)).strftime("%a %Y-%m-%d 00:00 UTC")
        assert (
            f"AccessPolicy {CLOSED} allows it only {tomorrow} 00:00-24:00 UTC, and that window "
            f"is closed; it opens next at {opens}"
        ) in refused.stderr, refused.stderr
        asked = c.jit(
            "alice", "request", "exec", "web-0", "-n", CLOSED, "--for", "5m", "--reason",
            "INC-9", "--name", "late", "--", "ls",
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        late = c.wait_phase(CLOSED, "late", "Denied")
        assert "and that window is closed; it opens next at" in late["status"]["message"]

        # The rule: approved by nobody but the rule, and the exec runs.
        asked = c.jit(
            "alice", "request", "exec", "web-0", "-n", RULED, "--for", "5m", "--reason",
            "INC-9: look", "--name", "look", "--", "ls",
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        approved = c.wait_phase(RULED, "look", "Approved")
        [auto] = approved["status"]["autoApprovals"]
        assert (auto["policy"], auto["rule"]) == (manifests.POLICY, "e2e-ls")
        shown = c.jit("alice", "show", "look", "-n", RULED)
        assert f"rule e2e-ls of AccessPolicy {manifests.POLICY}" in shown.stdout, shown.stdout
        assert auto["inputsDigest"] in shown.stdout
        ran = c.exec("alice", RULED, "web-0", "ls")
        assert ran.returncode == 0, ran.stderr
    finally:
        restored = c.kubectl(
            "admin", "patch", POLICIES, manifests.POLICY, "--type=merge",
            "-p", '{"spec": {"autoApprove": null}}',
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
