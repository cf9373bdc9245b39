"""Two AccessPolicies govern one namespace (issue 12, threat model 4.4), on the real API server.

`team-a` is the lax second policy of the attack: a shorter maxDuration (so "the strictest
policy" used to be this one), the developers as its approvers and break-glass users, and
self-approval allowed. The chart's `production` policy (SREs approve, only carol breaks the
glass) governs the same protected namespace, so alice can neither self-activate break-glass
nor approve her own request there.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e import manifests

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

NS = "composition"
REQUESTS_HOOK = 'admission webhook "accessrequests.jitgate.dev" denied the request'
TEAM_POLICY = {
    "apiVersion": "jitgate.dev/v1alpha1",
    "kind": "AccessPolicy",
    "metadata": {"name": "team-a"},
    "spec": {
        "namespaces": {"names": [NS]},
        "actions": ["exec"],
        "approvers": {"groups": ["developers"]},
        "allowSelfApproval": True,
        "maxDuration": "30m",
        "defaultDuration": "10m",
        "breakGlass": {"groups": ["developers"], "maxDuration": "30m"},
    },
}


def test_a_lax_second_policy_lets_no_developer_grant_herself_access(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NS, "labels": manifests.PROTECTED_LABEL},
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": NS},
    }
    c.apply("admin", namespace, account, *manifests.persona_rbac([NS]), TEAM_POLICY)
    c.create_pods(NS, "web-0")

    glass = c.jit(
        "alice", "request", "exec", "web-0", "-n", NS, "--break-glass", "--for", "5m",
        "--reason", "SEV1: let me in, the database is down", "--name", "glass",
    )  # fmt: skip
    # Refused at admission, saying why: the request is never created.
    assert glass.returncode == 1, glass.stderr
    assert "user alice may not use break-glass under AccessPolicy production" in glass.stderr
    assert c.kubectl("admin", "get", "accessrequest/glass", "-n", NS).returncode != 0

    asked = c.jit(
        "alice", "request", "exec", "web-0", "-n", NS, "--for", "5m", "--reason", "INC-7",
        "--name", "fix",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    pending = c.wait_phase(NS, "fix", "Pending")
    assert [p["name"] for p in pending["status"]["policies"]] == ["production", "team-a"]
    own = c.jit("alice", "approve", "fix", "-n", NS, "--yes")
    assert (own.returncode, own.stderr) == (
        1, f"Error: {REQUESTS_HOOK}: alice requested this access and cannot approve it "
        "(AccessPolicy production does not allow self-approval)\n",
    )  # fmt: skip
    # An SRE's approval meets production, not team-a: still no grant.
    by_bob = c.jit("bob", "approve", "fix", "-n", NS, "--yes")
    assert by_bob.returncode == 0, by_bob.stderr
    waited = c.wait(
        "admin", "--for=jsonpath={.status.observedApprovals}=1", "accessrequest/fix", "-n", NS
    )
    assert waited.returncode == 0, waited.stderr
    request = c.get("accessrequest", "fix", NS)
    assert request is not None and request["status"]["phase"] == "Pending"
    shown = c.jit("alice", "show", "fix", "-n", NS)
    assert "production (1 approval), team-a (1 approval)" in shown.stdout

    refused = c.exec("alice", NS, "web-0", "ls")
    assert refused.returncode != 0
    assert "AccessPolicies production and team-a require an approved grant" in refused.stderr
    # The refused break-glass request never reached the operator.
    assert c.records("operator", "--request", "glass") == []
