"""`kubectl jit` against a real kube-apiserver: CRD validation, RBAC, the status subresource,
SelfSubjectReview and watches as Kubernetes implements them (no webhook, no operator: the
test plays the operator by writing status as an admin)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
from apiserver import harness
from support import objects, personas

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

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
            # The queue shows only what the approver may decide, as the policies say.
            {"apiGroups": [GROUP], "resources": ["accesspolicies"], "verbs": ["get", "list"]},
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
def apiserver(crd_apiserver: harness.KubeAPIServer) -> harness.KubeAPIServer:
    crd_apiserver.apply("admin", *_rbac())
    crd_apiserver.create_namespace("prod")
    return crd_apiserver


def jit(
    server: harness.KubeAPIServer, who: str, *args: str, seconds: float = 60
) -> subprocess.CompletedProcess[str]:
    return server.jit(who, *args, timeout=seconds)


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
        "accessrequest.jitgate.dev/cleanup approval recorded\n"
        "The jitgate operator has not picked this request up yet; follow it with: "
        "kubectl jit wait cleanup -n prod\n",
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
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=apiserver.kubectl_env(),
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


def _seed(server: Any, name: str, requester: str, status: dict[str, Any], **spec: Any) -> None:
    person = next(p for p in personas.PEOPLE if p.name == requester)
    body = objects.access_request(
        name, "prod", requester=objects.requester(person.name, person.groups), **spec
    )
    server.apply("admin", body)
    set_status(server, name, status)


def test_the_approvers_queue_lists_what_they_may_decide_soonest_deadline_first(
    apiserver: Any,
) -> None:
    server = apiserver
    server.apply(
        "admin",
        objects.policy("queue-production", requiredApprovals=2),
        objects.policy("queue-dba", namespaces={"names": ["prod"]}, actions=["delete"],
                       resources=["statefulsets.apps"], approvers={"groups": ["dba"]}),
    )  # fmt: skip
    now = time.time()

    def pending(minutes: int, **fields: Any) -> dict[str, Any]:
        deadline = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + minutes * 60))
        return {"phase": "Pending", "policy": "queue-production", "requiredApprovals": 2,
                "pendingDeadline": deadline, **fields}  # fmt: skip

    _seed(server, "q-later", "alice", pending(50), reason="INC-2: later")
    exec_ls = {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}
    _seed(server, "q-soon", "alice", pending(5), reason="INC-1: soon", duration="5m",
          actions=[exec_ls])  # fmt: skip
    _seed(server, "q-own", "bob", pending(1))
    _seed(
        server, "q-voted", "alice", pending(2, approvals=[{"user": "bob", "decision": "Approve"}])
    )
    delete_db = {"verb": "delete", "resource": "statefulsets.apps", "names": ["db"]}
    _seed(server, "q-dba", "alice", {**pending(3), "policy": "queue-dba"}, actions=[delete_db])

    queue = jit(server, "bob", "list", "--pending", "-A")
    assert queue.returncode == 0, queue.stderr
    header, *rows = queue.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "REQUESTER", "ALLOWS", "FOR", "APPROVALS",
                              "DEADLINE", "REASON"]  # fmt: skip
    names = [row.split()[1] for row in rows]
    assert names == ["q-soon", "q-later"]
    assert re.search(r"exec pod/web-0 \(container app, command: ls\)\s+5m\s+0/2\s+in 4m\d*s?\s+"
                     r"INC-1: soon$", rows[0]), rows[0]  # fmt: skip
    assert "15m (the policy's default)" in rows[1] and rows[1].endswith("INC-2: later")
    as_json = jit(server, "bob", "list", "--pending", "-n", "prod", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(as_json.stdout)["items"]] == names

    # alice may not read policies: she is told her queue is not filtered.
    hers = jit(server, "alice", "list", "--pending", "-n", "prod")
    assert hers.stderr.startswith("Warning: you may not read AccessPolicies"), hers.stderr

    # --mine: only the caller's own requests.
    mine = jit(server, "bob", "list", "--mine", "-n", "prod", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(mine.stdout)["items"]] == ["q-own"]

    # approve says where the request now stands.
    approved = jit(server, "bob", "approve", "q-later", "-n", "prod", "--yes")
    assert approved.stdout.splitlines()[-1] == (
        "Pending: 1 of 2 approvals; waiting for 1 more from group sre"
    ), approved.stderr
