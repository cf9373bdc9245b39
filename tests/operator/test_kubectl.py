"""The real kubectl drives the operator: apply, approve through the status subresource,
watch the phase, delete the grant."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.kubectl

MANIFESTS = """
apiVersion: jitgate.dev/v1alpha1
kind: AccessPolicy
metadata: {name: production}
spec:
  namespaces: {names: [prod]}
  actions: [exec]
  approvers: {groups: [sre]}
  requiredApprovals: 1
---
apiVersion: jitgate.dev/v1alpha1
kind: AccessRequest
metadata: {name: fix-web-0, namespace: prod}
spec:
  actions: [{verb: exec, names: [web-0]}]
  duration: 15m
  reason: "INC-1234: worker stuck"
  requester: {user: alice, groups: [developers]}
"""


async def phase(kubectl, name: str) -> str:
    result = await kubectl(
        "get", "accessrequest", name, "-n", "prod", "-o", "jsonpath={.status.phase}"
    )
    return result.stdout


async def test_kubectl_approves_and_revokes(jit, kubectl) -> None:
    async with jit.running():
        await kubectl("apply", "--validate=false", "-f", "-", input=MANIFESTS)
        await jit.until_phase("fix-web-0", "Pending")
        assert await phase(kubectl, "fix-web-0") == "Pending"
        # What the webhook leaves after `kubectl jit approve`: the entry, stamped.
        entry = jit.stamped("fix-web-0", "bob", comment="ok")
        patch = [{"op": "add", "path": "/status/approvals/-", "value": entry}]
        await kubectl(
            "patch", "accessrequest", "fix-web-0", "-n", "prod", "--subresource=status",
            "--type=json", "-p", json.dumps(patch), user="bob",
        )  # fmt: skip
        await jit.until_phase("fix-web-0", "Approved")
        assert await phase(kubectl, "fix-web-0") == "Approved"
        grants = (await kubectl("get", "grants", "-n", "prod", "-o", "json")).json()["items"]
        assert [g["spec"]["user"] for g in grants] == ["alice"]
        name = grants[0]["metadata"]["name"]
        table = (await kubectl("get", "accessrequests", "-n", "prod")).stdout
        assert "fix-web-0" in table and "Approved" in table
        await kubectl("delete", "grant", name, "-n", "prod", "--timeout=20s")
        await jit.until_phase("fix-web-0", "Revoked")
        assert await phase(kubectl, "fix-web-0") == "Revoked"
    assert jit.types() == [
        "request.created",
        "request.approval",
        "request.approved",
        "grant.created",
        "grant.revoked",
    ]
