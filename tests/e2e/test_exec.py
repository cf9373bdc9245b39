"""`kubectl exec` in a protected namespace, end to end: denied with a hint, requested with
`kubectl jit`, refused as a self-approval, approved by an SRE, admitted (up to the missing
kubelet) for exactly what the grant pins, then expired or revoked."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

DENIED = 'Error from server (Forbidden): admission webhook "connect.actions.jitgate.dev" denied'


def hint(stderr: str) -> list[str]:
    """The `kubectl jit request …` command a denial suggests, as argv after `kubectl jit`."""
    _, _, command = stderr.strip().partition("; ask with: ")
    words = shlex.split(command)
    assert words[:3] == ["kubectl", "jit", "request"], stderr
    return words[2:]


def types(records: list[dict[str, Any]]) -> list[str]:
    return [record["type"] for record in records]


def test_exec_in_prod_is_denied_with_the_command_that_asks_for_it(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "shell-0")

    denied = c.exec("alice", "prod", "shell-0", "ls", "-l")

    assert (denied.returncode, denied.stdout) == (1, "")
    assert denied.stderr == (
        f"{DENIED} the request: jitgate denied exec into pod shell-0 in namespace prod "
        "(container app, command ls -l): alice holds no live grant for it. AccessPolicy "
        "production requires an approved grant for it; ask with: kubectl jit request exec "
        'shell-0 -n prod -c app --for 15m --reason "<why>" -- ls -l\n'
    )
    # The hint is a command line that works as it is.
    asked = c.jit(
        "alice", *[w if w != "<why>" else "INC-7: look around" for w in hint(denied.stderr)]
    )
    assert asked.returncode == 0, asked.stderr
    name = asked.stdout.split()[0].removeprefix("accessrequest.jitgate.dev/")
    spec = c.get("accessrequest", name, "prod")["spec"]
    assert spec["actions"] == [
        {"verb": "exec", "resource": "pods", "names": ["shell-0"], "container": "app",
         "command": ["ls", "-l"]}
    ]  # fmt: skip
    assert (spec["duration"], spec["reason"]) == ("15m", "INC-7: look around")


def test_exec_in_an_unprotected_namespace_is_not_intercepted(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("dev", "shell-0")
    before = len(c.records("webhook", "--namespace", "dev"))

    admitted = c.exec("alice", "dev", "shell-0", "ls")

    assert admitted.returncode == 1
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
    assert "jitgate" not in admitted.stderr
    # The namespaceSelector kept the API server from even asking the webhook.
    assert len(c.records("webhook", "--namespace", "dev")) == before == 0


def test_request_approve_exec_story(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "web-0")
    first = c.exec("alice", "prod", "web-0", "ls")
    assert first.stderr.startswith(DENIED), first.stderr

    # alice asks; the operator makes the request Pending under the policy.
    asked = c.jit(
        "alice", "request", "exec", "web-0", "-n", "prod", "-c", "app", "--for", "2m",
        "--reason", "INC-1234: worker stuck", "--ticket", "INC-1234", "--name", "fix-web-0",
        "--", "ls",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == (
        "accessrequest.jitgate.dev/fix-web-0 created\n"
        "Ask an approver to run: kubectl jit approve fix-web-0 -n prod\n"
    )
    pending = c.wait_phase("prod", "fix-web-0", "Pending")
    assert pending["spec"]["requester"] == {
        "user": "alice",
        "groups": ["developers", "system:authenticated"],
    }
    assert (pending["status"]["policy"], pending["status"]["requiredApprovals"]) == (
        "production",
        1,
    )

    # alice may patch the status subresource (RBAC), but jitgate refuses her own approval.
    own = c.jit("alice", "approve", "fix-web-0", "-n", "prod", "--yes")
    assert (own.returncode, own.stdout) == (1, "")
    assert own.stderr == (
        'Error: admission webhook "accessrequests.jitgate.dev" denied the request: alice '
        "requested this access and cannot approve it (AccessPolicy production does not allow "
        "self-approval)\n"
    )

    # bob approves; the operator issues the Grant.
    approved = c.jit("bob", "approve", "fix-web-0", "-n", "prod", "-m", "ok", "--yes")
    recorded, state = approved.stdout.splitlines()
    assert (approved.returncode, recorded) == (
        0,
        "accessrequest.jitgate.dev/fix-web-0 approval recorded as bob",
    ), approved.stderr
    # The operator issues the grant within the second: approve says so.
    assert re.fullmatch(r"Approved: grant fix-web-0-\w+ is live until \S+ \(\w+ left\)", state), (
        state
    )
    request = c.wait_phase("prod", "fix-web-0", "Approved")
    (approval,) = request["status"]["approvals"]
    assert (approval["user"], approval["decision"], approval["comment"]) == ("bob", "Approve", "ok")
    assert approval["specDigest"].startswith("sha256:")
    grant_name = request["status"]["grant"]["name"]
    grant = c.get("grant", grant_name, "prod")
    assert grant is not None
    assert grant["spec"]["user"] == "alice"
    assert grant["spec"]["accessRequest"]["name"] == "fix-web-0"
    assert grant["spec"]["actions"] == pending["spec"]["actions"]
    assert [a["user"] for a in grant["spec"]["approvals"]] == ["bob"]
    assert grant["metadata"]["ownerReferences"][0]["uid"] == request["metadata"]["uid"]

    # alice's exec passes admission and fails only for want of a kubelet.
    admitted = c.exec("alice", "prod", "web-0", "ls")
    assert admitted.returncode == 1
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
    # bob holds no grant; alice's grant pins `ls`.
    other_user = c.exec("bob", "prod", "web-0", "ls")
    assert other_user.stderr.startswith(DENIED), other_user.stderr
    assert "bob holds no live grant for it" in other_user.stderr
    other_command = c.exec("alice", "prod", "web-0", "cat", "/etc/shadow")
    assert other_command.stderr.startswith(DENIED), other_command.stderr
    assert f"grant {grant_name} allows only the command ls" in other_command.stderr
    other_pod = c.exec("alice", "prod", c.probe_pod, "ls")
    assert other_pod.stderr.startswith(DENIED), other_pod.stderr

    # Every step is in the audit logs, which verify.
    c.assert_audit_logs_verify()
    operator = c.records("operator", "--request", "fix-web-0")
    assert types(operator) == [
        "request.created", "request.approval", "request.approved", "grant.created"
    ]  # fmt: skip
    created, approval_record, approved_record, granted = operator
    assert created["actor"]["user"] == "alice"
    assert created["reason"] == "INC-1234: worker stuck"
    assert approval_record["actor"]["user"] == "bob"
    assert approval_record["context"]["specDigest"] == approval["specDigest"]
    assert approved_record["actor"]["user"] == "bob"
    assert granted["grant"] == grant_name
    webhook = [
        r for r in c.records("webhook", "--namespace", "prod", "--user", "alice")
        if (r.get("action") or {}).get("name") in ("web-0", "fix-web-0")
    ]  # fmt: skip
    # Records in order: the first exec (kubectl 1.33 tries a WebSocket, then SPDY: two
    # admission reviews when the first is refused), the self-approval, the admitted exec,
    # the exec with another command.
    summary = [
        (r["type"], r["action"]["verb"], r.get("grant"), (r.get("reason") or "").split(":")[0])
        for r in webhook
    ]
    first_denials = summary[: summary.index(("action.denied", "update", None, "ApprovalRefused"))]
    assert first_denials and set(first_denials) == {("action.denied", "exec", None, "NoLiveGrant")}
    assert ("action.allowed", "exec", grant_name, "") in summary
    allowed = next(r for r in webhook if r["type"] == "action.allowed")
    assert allowed["request"] == "fix-web-0"
    assert allowed["action"]["command"] == ["ls"]
    assert allowed["action"]["container"] == "app"
    assert summary[-1] == ("action.denied", "exec", None, "NoLiveGrant")


def test_grant_expires_and_exec_is_denied_again(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "web-1")
    asked = c.jit(
        "alice", "request", "exec", "web-1", "-n", "prod", "--for", "8s",
        "--reason", "quick look", "--name", "brief-web-1",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    c.wait_phase("prod", "brief-web-1", "Pending")

    # carol approves with plain kubectl on the status subresource; jitgate stamps who she is.
    decision = {"decision": "Approve", "comment": "short one", "user": "mallory"}
    patched = c.kubectl(
        "carol", "patch", "accessrequest", "brief-web-1", "-n", "prod", "--subresource=status",
        "--type=json", "-p",
        json.dumps([{"op": "add", "path": "/status/approvals/-", "value": decision}]),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    request = c.wait_phase("prod", "brief-web-1", "Approved")
    assert request["status"]["approvals"][0]["user"] == "carol"
    grant_name = request["status"]["grant"]["name"]

    # Any command, any container: the request pinned none.
    admitted = c.exec("alice", "prod", "web-1", "date")
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr

    gone = c.wait("admin", "--for=delete", f"grant/{grant_name}", "-n", "prod", timeout=30)
    assert gone.returncode == 0, gone.stderr
    expired = c.wait_phase("prod", "brief-web-1", "Expired")
    assert expired["status"]["grant"]["name"] == grant_name
    assert c.get("grant", grant_name, "prod") is None

    again = c.exec("alice", "prod", "web-1", "date")
    assert again.stderr.startswith(DENIED), again.stderr

    c.assert_audit_logs_verify()
    operator = types(c.records("operator", "--request", "brief-web-1"))
    assert operator[:4] == [
        "request.created", "request.approval", "request.approved", "grant.created"
    ]  # fmt: skip
    assert "grant.expired" in operator[4:]
    allowed = c.records("webhook", "--grant", grant_name, "--type", "action.allowed")
    assert [r["action"]["command"] for r in allowed] == [["date"]]


def test_revoked_grant_stops_admitting(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "web-2")
    assert c.jit(
        "alice", "request", "attach", "web-2", "-n", "prod", "--for", "10m",
        "--reason", "watch the logs", "--name", "attach-web-2",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "attach-web-2", "Pending")
    assert c.jit("bob", "approve", "attach-web-2", "-n", "prod", "--yes").returncode == 0
    grant_name = c.wait_phase("prod", "attach-web-2", "Approved")["status"]["grant"]["name"]
    attached = c.kubectl("alice", "attach", "-n", "prod", "web-2")
    assert c.no_kubelet_error() in attached.stderr, attached.stderr

    revoked = c.jit("alice", "revoke", "attach-web-2", "-n", "prod")
    assert revoked.returncode == 0, revoked.stderr
    gone = c.wait("admin", "--for=delete", f"grant/{grant_name}", "-n", "prod", timeout=30)
    assert gone.returncode == 0, gone.stderr
    c.wait_phase("prod", "attach-web-2", "Revoked")
    again = c.kubectl("alice", "attach", "-n", "prod", "web-2")
    assert DENIED in again.stderr, again.stderr  # after "If you don't see a command prompt…"
    assert "grant.revoked" in types(c.records("operator", "--request", "attach-web-2"))


def test_port_forward_needs_a_grant(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "db-0")
    c.api.set_pod_phase("prod", "db-0")  # kubectl port-forward wants a Running pod

    denied = c.kubectl("alice", "port-forward", "-n", "prod", "pod/db-0", ":5432", timeout=30)
    assert denied.stderr.startswith(
        "error: error upgrading connection: admission webhook "
        '"connect.actions.jitgate.dev" denied the request: jitgate denied port-forward to pod '
        "db-0 in namespace prod: alice holds no live grant for it."
    ), denied.stderr
    assert c.jit(
        "alice", "request", "port-forward", "db-0", "-n", "prod", "--for", "5m",
        "--reason", "look at the data", "--name", "pf-db-0",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "pf-db-0", "Pending")
    assert c.jit("carol", "approve", "pf-db-0", "-n", "prod", "--yes").returncode == 0
    grant = c.wait_phase("prod", "pf-db-0", "Approved")["status"]["grant"]["name"]

    admitted = c.kubectl("alice", "port-forward", "-n", "prod", "pod/db-0", ":5432", timeout=30)
    assert "error upgrading connection: error dialing backend" in admitted.stderr, admitted.stderr
    assert c.no_kubelet_error() in admitted.stderr
    # kubectl 1.33 tries a WebSocket first and falls back to SPDY when the upgrade fails:
    # both attempts pass admission here, so one port-forward may be two allowed actions.
    # kubectl names the ports inside the stream, not in the URL, so the API server's
    # PodPortForwardOptions (and the record) carry none.
    allowed = c.records("webhook", "--grant", grant)
    assert 1 <= len(allowed) <= 2
    assert {(r["type"], r["action"]["verb"], tuple(r["action"]["ports"])) for r in allowed} == {
        ("action.allowed", "portforward", ())
    }


def test_a_denied_request_issues_no_grant(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "web-3")
    assert c.jit(
        "alice", "request", "exec", "web-3", "-n", "prod", "--reason", "curious",
        "--name", "nosy-web-3",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "nosy-web-3", "Pending")

    denied = c.jit(
        "carol", "deny", "nosy-web-3", "-n", "prod", "-m", "not without a ticket", "--yes"
    )
    assert denied.returncode == 0, denied.stderr
    request = c.wait_phase("prod", "nosy-web-3", "Denied")
    assert "grant" not in request["status"]
    assert [(a["user"], a["decision"]) for a in request["status"]["approvals"]] == [
        ("carol", "Deny")
    ]
    late = c.jit("bob", "approve", "nosy-web-3", "-n", "prod", "--yes")
    assert (late.returncode, late.stderr) == (
        1,
        'Error: accessrequest "nosy-web-3" is Denied; only a Pending request can be approved '
        "or denied\n",
    )
    assert DENIED in c.exec("alice", "prod", "web-3", "ls").stderr
    assert types(c.records("operator", "--request", "nosy-web-3")) == [
        "request.created", "request.approval", "request.denied"
    ]  # fmt: skip


def test_an_ephemeral_container_needs_an_exec_grant(jitgate_cluster: Any) -> None:
    # `kubectl debug` adds an ephemeral container that runs any image and command in the pod;
    # it must not be a way around exec protection.
    c = jitgate_cluster
    c.create_pods("prod", "debugged-0")
    argv = ("debug", "debugged-0", "-n", "prod", "--image=busybox", "--container=dbg")
    denied = c.kubectl("alice", *argv, "--", "sh", "-c", "id")
    assert denied.returncode == 1, denied.stdout
    assert DENIED in denied.stderr, denied.stderr
    assert "jitgate denied exec into pod debugged-0 in namespace prod" in denied.stderr
    pod = c.get("pod", "debugged-0", "prod")
    assert pod is not None and not pod["spec"].get("ephemeralContainers")

    assert c.jit(
        "alice", "request", "exec", "debugged-0", "-n", "prod", "--for", "5m",
        "--reason", "debug it", "--name", "debug-0",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "debug-0", "Pending")
    assert c.jit("bob", "approve", "debug-0", "-n", "prod", "--yes").returncode == 0
    grant = c.wait_phase("prod", "debug-0", "Approved")["status"]["grant"]["name"]
    admitted = c.kubectl("alice", *argv, "--", "sh", "-c", "id")
    assert admitted.returncode == 0, admitted.stderr
    pod = c.get("pod", "debugged-0", "prod")
    assert pod is not None
    assert [e["name"] for e in pod["spec"]["ephemeralContainers"]] == ["dbg"]
    (allowed,) = c.records("webhook", "--grant", grant)
    assert allowed["action"]["subresource"] == "ephemeralcontainers"
