"""`kubectl jit` against a real kube-apiserver: CRD validation, RBAC, the status subresource,
SelfSubjectReview and watches as Kubernetes implements them (no webhook, no operator: the
test plays the operator by writing status as an admin)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import build, harness

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

REPO = Path(__file__).resolve().parents[2]
APISERVER_DIR = REPO / "tests" / "apiserver"
PLUGIN_DIR = Path(sys.executable).parent
GROUP = "jitgate.dev"


def _rbac() -> list[dict[str, Any]]:
    """Requesters may create and annotate requests; approvers may also write status."""
    requests = {"apiGroups": [GROUP], "resources": ["accessrequests"]}
    roles = {
        "jit-requester": [{**requests, "verbs": ["create", "get", "list", "watch", "patch"]}],
        "jit-approver": [
            {**requests, "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [GROUP], "resources": ["accessrequests/status"], "verbs": ["patch"]},
            {"apiGroups": [GROUP], "resources": ["grants"], "verbs": ["get"]},
        ],
    }
    objects: list[dict[str, Any]] = []
    for name, rules in roles.items():
        group = "developers" if name == "jit-requester" else "sre"
        objects.append(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name}, "rules": rules}
        )  # fmt: skip
        objects.append(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": name},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                           "name": group}]}
        )  # fmt: skip
    return objects


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path("/usr/bin/kubectl").exists():
        pytest.skip("the real kubectl binary is not installed")
    try:
        binary = build.ensure_binary().binary
    except build.BuildUnavailable as error:
        pytest.skip(f"real kube-apiserver tier unavailable: {error}")
    with harness.start_kube_apiserver(binary, tmp_path_factory.mktemp("jit-apiserver")) as server:
        for crd in sorted((REPO / "crds").glob("*.yaml")):
            server.kubectl("admin", "apply", "-f", str(crd), check=True)
        server.kubectl(
            "admin", "wait", "--for=condition=Established", "--timeout=60s",
            "crd/accessrequests.jitgate.dev", "crd/grants.jitgate.dev", check=True,
        )  # fmt: skip
        server.apply("admin", *_rbac())
        server.create_namespace("prod")
        yield server


def jit(server: Any, who: str, *args: str, seconds: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [server.kubectl_path, "jit", "--kubeconfig", str(server.kubeconfig(who)), *args],
        capture_output=True, text=True, timeout=seconds, check=False, env=_env(server),
    )  # fmt: skip


def _env(server: Any) -> dict[str, str]:
    env = server.kubectl_env()
    env["PATH"] = f"{PLUGIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    return env


def stored(server: Any, name: str) -> dict[str, Any]:
    status, body = server.request(
        "GET", f"/apis/{GROUP}/v1alpha1/namespaces/prod/accessrequests/{name}"
    )
    assert status == 200, body
    return dict(body)


def set_status(server: Any, name: str, status: dict[str, Any]) -> None:
    server.kubectl(
        "admin", "patch", "accessrequest", name, "-n", "prod", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}), check=True,
    )  # fmt: skip


def test_request_is_valid_for_the_crd_and_named_after_the_authenticated_user(
    apiserver: Any,
) -> None:
    result = jit(
        apiserver, "alice", "request", "exec", "web-0", "-n", "prod", "-c", "app", "--for", "15m",
        "--reason", "INC-1234: worker stuck", "--ticket", "INC-1234", "--", "ls", "-l",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = re.fullmatch(
        r"accessrequest\.jitgate\.dev/(alice-exec-web-0-[a-z0-9]{4}) created",
        result.stdout.split("\n")[0],
    )
    assert name, result.stdout
    spec = stored(apiserver, name[1])["spec"]
    assert spec["actions"] == [{"verb": "exec", "resource": "pods", "names": ["web-0"],
                                "container": "app", "command": ["ls", "-l"]}]  # fmt: skip


def test_approvals_on_the_status_subresource_with_rbac(apiserver: Any) -> None:
    created = jit(apiserver, "alice", "request", "delete", "deploy/web", "-n", "prod",
                  "--reason", "cleanup", "--name", "cleanup")  # fmt: skip
    assert created.returncode == 0, created.stderr
    # No operator here: status is absent, so the first approval must create it.
    first = jit(apiserver, "bob", "approve", "cleanup", "-n", "prod", "-m", "ok", "--yes")
    assert (first.returncode, first.stdout) == (
        0,
        "accessrequest.jitgate.dev/cleanup approval recorded\n",
    ), first.stderr
    second = jit(apiserver, "carol", "deny", "cleanup", "-n", "prod", "-m", "wait", "--yes")
    assert second.returncode == 0, second.stderr
    decisions = [
        (a["decision"], a.get("comment"))
        for a in stored(apiserver, "cleanup")["status"]["approvals"]
    ]
    assert decisions == [("Approve", "ok"), ("Deny", "wait")]
    refused = jit(apiserver, "alice", "approve", "cleanup", "-n", "prod", "--yes")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        'Error: accessrequests.jitgate.dev "cleanup" is forbidden: User "alice" cannot patch '
        'resource "accessrequests/status" in API group "jitgate.dev" in the namespace "prod"\n'
    )


def test_cancel_list_show_and_not_found(apiserver: Any) -> None:
    assert jit(apiserver, "alice", "request", "attach", "web-1", "-n", "prod", "--reason", "r",
               "--name", "peek").returncode == 0  # fmt: skip
    cancelled = jit(apiserver, "alice", "cancel", "peek", "-n", "prod")
    assert cancelled.returncode == 0, cancelled.stderr
    assert stored(apiserver, "peek")["metadata"]["annotations"] == {"jitgate.dev/cancel": "true"}
    listed = jit(apiserver, "bob", "list", "-A")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["prod", "peek"] for line in listed.stdout.splitlines())
    shown = jit(apiserver, "bob", "show", "peek", "-n", "prod")
    assert "attach pod/web-1 (any container)" in shown.stdout
    missing = jit(apiserver, "bob", "show", "nope", "-n", "prod")
    assert (missing.returncode, missing.stderr) == (
        1, 'Error: accessrequest "nope" not found in namespace "prod"\n'
    )  # fmt: skip


def test_wait_follows_a_real_watch_until_approved(apiserver: Any) -> None:
    process = subprocess.Popen(
        [apiserver.kubectl_path, "jit", "--kubeconfig", str(apiserver.kubeconfig("alice")),
         "request", "portforward", "web-0", "-n", "prod", "--reason", "debug", "--name", "pf",
         "--wait", "--timeout", "60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(apiserver),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for _ in range(3):
            if process.stdout.readline().startswith("Waiting up to 1m"):
                break
        set_status(apiserver, "pf", {"phase": "Pending", "requiredApprovals": 1})
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
        set_status(
            apiserver,
            "pf",
            {"phase": "Approved", "grant": {"name": "pf-x7k2", "expiresAt": expires}},
        )
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    approved, window, run, command = out.splitlines()[-4:]
    assert approved == "accessrequest.jitgate.dev/pf approved"
    assert window.startswith(f"Grant pf-x7k2 is live until {expires} (")
    assert (run, command) == ("Run:", "  kubectl port-forward -n prod pod/web-0 LOCAL:REMOTE")
