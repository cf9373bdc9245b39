"""The chart's roles for people on a real kube-apiserver: the ClusterRoles as Helm renders
them, bound as the chart README says (RoleBinding per namespace, ClusterRoleBinding for
cluster-wide approvers and auditors), exercised by users bound to them through the real
kubectl and `kubectl jit` (no webhook, no operator: RBAC alone is under test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apiserver import harness
from chart import render
from support import objects

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = Path(sys.executable).parent
RBAC = "rbac.authorization.k8s.io"
# An auditor no static-token persona plays: the admin impersonates her.
AUDITOR = ("--as=dana", "--as-group=auditors")


def binding(kind: str, role: str, subject: tuple[str, str], namespace: str | None = None) -> Any:
    subject_kind, name = subject
    meta: dict[str, Any] = {"name": f"{role}-{name}"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": subject_kind, "name": name}],
    }  # fmt: skip


@pytest.fixture(scope="module")
def apiserver(crd_apiserver: harness.KubeAPIServer) -> harness.KubeAPIServer:
    roles = [
        role
        for role in render.by_kind(render.render_chart({}), "ClusterRole")
        if role["metadata"]["labels"].get("app.kubernetes.io/component") == "user-roles"
    ]
    assert len(roles) == 3
    for namespace in ("prod", "staging"):
        crd_apiserver.create_namespace(namespace)
    crd_apiserver.apply(
        "admin",
        *roles,
        # As the chart README binds them: developers request in prod only; bob approves
        # everywhere; carol approves in prod only; auditors read everywhere.
        binding("RoleBinding", "jitgate-requester", ("Group", "developers"), "prod"),
        binding("ClusterRoleBinding", "jitgate-approver", ("User", "bob")),
        binding("RoleBinding", "jitgate-approver", ("User", "carol"), "prod"),
        binding("ClusterRoleBinding", "jitgate-auditor", ("Group", "auditors")),
        # The sre group (bob, carol) approves in prod.
        objects.policy(),
    )
    return crd_apiserver


def jit(server: harness.KubeAPIServer, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.jit(who, *args)


def pending(server: Any, name: str) -> None:
    """The operator's first step, played by the admin: the request is Pending under the
    policy (the approver's queue lists what the caller may decide under it)."""
    status = {"phase": "Pending", "policy": "production", "requiredApprovals": 1}
    server.kubectl(
        "admin", "patch", "accessrequest", name, "-n", "prod", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}), check=True,
    )  # fmt: skip


def test_a_requester_bound_in_one_namespace_requests_there_only(apiserver: Any) -> None:
    asked = jit(apiserver, "alice", "request", "exec", "web-0", "-n", "prod", "--reason", "INC-1",
                "--name", "fix-web-0")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    elsewhere = jit(apiserver, "alice", "request", "exec", "web-0", "-n", "staging",
                    "--reason", "INC-1")  # fmt: skip
    assert elsewhere.returncode == 1 and "forbidden" in elsewhere.stderr
    assert jit(apiserver, "alice", "list", "-n", "prod").returncode == 0
    # Requesting is not approving, and nobody but the operator's owner reference deletes.
    approve = jit(apiserver, "alice", "approve", "fix-web-0", "-n", "prod", "-m", "me", "--yes")
    assert approve.returncode == 1 and 'cannot patch resource "accessrequests/status"' in (
        approve.stderr
    )
    deleted = apiserver.kubectl("alice", "delete", "accessrequest", "fix-web-0", "-n", "prod")
    assert deleted.returncode != 0 and "forbidden" in deleted.stderr


def test_an_approver_bound_cluster_wide_lists_pending_requests_everywhere(apiserver: Any) -> None:
    asked = jit(apiserver, "alice", "request", "attach", "web-1", "-n", "prod", "--reason", "r",
                "--name", "peek")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    pending(apiserver, "peek")
    listed = jit(apiserver, "bob", "list", "--pending", "-A")  # the plugin's own help example
    assert listed.returncode == 0, listed.stderr
    assert "peek" in listed.stdout and listed.stderr == ""  # the policies were readable
    approved = jit(apiserver, "bob", "approve", "peek", "-n", "prod", "-m", "ok", "--yes")
    assert approved.returncode == 0, approved.stderr
    # Revoke is an annotation: a patch of the request itself.
    assert (
        apiserver.kubectl(
            "bob", "auth", "can-i", "patch", "accessrequests.jitgate.dev", "-n", "staging"
        ).stdout.strip()
        == "yes"
    )


def test_an_approver_bound_in_one_namespace_decides_there_only(apiserver: Any) -> None:
    asked = jit(apiserver, "alice", "request", "exec", "web-2", "-n", "prod", "--reason", "r",
                "--name", "carols")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    pending(apiserver, "carols")
    here = jit(apiserver, "carol", "list", "--pending", "-n", "prod")
    assert here.returncode == 0 and "carols" in here.stdout, here.stderr
    everywhere = jit(apiserver, "carol", "list", "--pending", "-A")
    assert everywhere.returncode == 1 and "forbidden" in everywhere.stderr
    approved = jit(apiserver, "carol", "approve", "carols", "-n", "prod", "-m", "ok", "--yes")
    assert approved.returncode == 0, approved.stderr


def test_an_auditor_reads_everything_and_changes_nothing(apiserver: Any) -> None:
    asked = jit(apiserver, "alice", "request", "exec", "db-0", "-n", "prod", "--reason", "r",
                "--name", "audited")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    read = apiserver.kubectl(
        "admin", *AUDITOR, "get", "accessrequests,grants,accesspolicies", "-A", "-o", "name"
    )
    assert read.returncode == 0, read.stderr
    assert "accessrequest.jitgate.dev/audited" in read.stdout
    for question in (
        ("create", "accessrequests.jitgate.dev"),
        ("patch", "accessrequests.jitgate.dev", "--subresource=status"),
        ("patch", "accessrequests.jitgate.dev"),
        ("delete", "grants.jitgate.dev"),
    ):
        can = apiserver.kubectl("admin", *AUDITOR, "auth", "can-i", *question, "-n", "prod")
        assert can.stdout.strip() == "no", question
    can = apiserver.kubectl("admin", *AUDITOR, "auth", "can-i", "list", "grants.jitgate.dev", "-A")
    assert can.stdout.strip() == "yes"
