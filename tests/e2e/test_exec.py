"""`kubectl exec`, `attach` and `port-forward` in a protected namespace, end to end: denied
with a hint, requested with `kubectl jit`, refused as a self-approval, approved by an SRE,
admitted for exactly what the grant pins, then expired or revoked.

The pods run on kwok's node (tests/apiserver/harness.py, `start_kwok`): an admitted exec
really runs its command (in ``c.node.workdir``) and prints its output and exit code, a denied
one runs nothing; attach streams ``c.node.attach_log``; port-forward reaches an echo."""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as dt
import io
import json
import os
import re
import shlex
import signal
import socket
import threading
from typing import Any

import pytest
from e2e import streams

from jitgate.core.clock import parse_time

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
    c.run_pods("dev", "shell-0")
    before = len(c.records("webhook", "--namespace", "dev"))

    admitted = c.exec("alice", "dev", "shell-0", "sh", "-c", "echo out; echo err >&2; exit 4")

    assert (admitted.returncode, admitted.stdout) == (4, "out\n"), admitted.stderr
    assert admitted.stderr == "err\ncommand terminated with exit code 4\n"
    # The namespaceSelector kept the API server from even asking the webhook.
    assert len(c.records("webhook", "--namespace", "dev")) == before == 0


# What alice runs in web-0: it prints where it runs and leaves a file there.
FIX = ("sh", "-c", "pwd; touch web-0.fixed; exit 3")


def test_request_approve_exec_story(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "web-0")
    side_effect = c.node.workdir / "web-0.fixed"
    first = c.exec("alice", "prod", "web-0", *FIX)
    assert first.stderr.startswith(DENIED), first.stderr
    assert not side_effect.exists()  # refused at admission: nothing ran

    # alice asks; the operator makes the request Pending under the policy.
    asked = c.jit(
        "alice", "request", "exec", "web-0", "-n", "prod", "-c", "app", "--for", "2m",
        "--reason", "INC-1234: worker stuck", "--ticket", "INC-1234", "--name", "fix-web-0",
        "--", *FIX,
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
    recorded, state, run = approved.stdout.splitlines()
    assert (approved.returncode, recorded) == (
        0,
        "accessrequest.jitgate.dev/fix-web-0 approval recorded as bob",
    ), approved.stderr
    # The operator issues the grant within the second: approve says so, and what alice runs.
    assert re.fullmatch(
        r"Approved: grant fix-web-0-\w+ is live until \S+ \(\w+ left\); alice runs:", state
    ), state
    assert run == "  kubectl exec -n prod web-0 -c app -- " + shlex.join(FIX)
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

    # alice's command runs, in the pod's node, and she sees its output and its exit status.
    admitted = c.exec("alice", "prod", "web-0", *FIX)
    assert (admitted.returncode, admitted.stdout) == (3, f"{c.node.workdir}\n"), admitted.stderr
    assert side_effect.exists()
    # jitgate's warning that the grant ends within minutes does not reach her: the API server
    # sends admission warnings as response headers, and it answers an exec with a 101
    # (Switching Protocols) that carries none, over WebSocket and SPDY alike (kubectl -v=9).
    assert admitted.stderr == "command terminated with exit code 3\n"
    side_effect.unlink()
    # bob holds no grant; alice's grant pins the command; neither runs anything.
    other_user = c.exec("bob", "prod", "web-0", *FIX)
    assert other_user.stderr.startswith(DENIED), other_user.stderr
    assert "bob holds no live grant for it" in other_user.stderr
    other_command = c.exec("alice", "prod", "web-0", "cat", "/etc/shadow")
    assert other_command.stderr.startswith(DENIED), other_command.stderr
    assert f"grant {grant_name} allows only the command {shlex.join(FIX)}" in other_command.stderr
    assert other_command.stdout == ""
    other_pod = c.exec("alice", "prod", c.probe_pod, *FIX)
    assert other_pod.stderr.startswith(DENIED), other_pod.stderr
    assert not side_effect.exists()

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
    assert ("action.allowed", "exec", grant_name, "INC-1234") in summary  # the request's reason
    allowed = next(r for r in webhook if r["type"] == "action.allowed")
    assert allowed["request"] == "fix-web-0"
    assert allowed["action"]["command"] == list(FIX)
    assert allowed["action"]["container"] == "app"
    assert summary[-1] == ("action.denied", "exec", None, "NoLiveGrant")

    # One command answers who exec'd into prod/web-0, approved by whom, and why: the webhook
    # took the approvers, reason and ticket from the Grant it holds.
    assert (grant["spec"]["reason"], grant["spec"]["ticket"]) == (
        "INC-1234: worker stuck",
        "INC-1234",
    )
    assert (allowed["reason"], allowed["context"]["approvers"], allowed["context"]["ticket"]) == (
        "INC-1234: worker stuck", ["bob"], "INC-1234"
    )  # fmt: skip
    who = c.audit("webhook", "query", "-n", "prod", "--pod", "web-0", "--type", "action.allowed")
    header, row = (re.split(r"\s{2,}", line) for line in who.stdout.splitlines())
    cells = dict(zip(header, row, strict=True))
    assert (cells["USER"], cells["GRANT"], cells["APPROVERS"], cells["REASON"]) == (
        "alice", grant_name, "bob", "INC-1234: worker stuck"
    )  # fmt: skip
    flat = c.audit("webhook", "export", "--format", "csv", "--object", "pod/web-0", "--user",
                   "alice", "--type", "action.allowed")  # fmt: skip
    (exported,) = csv.DictReader(io.StringIO(flat.stdout))
    assert {k: exported[k] for k in ("target", "container", "approvers", "ticket", "reason")} == {
        "target": "pods/web-0", "container": "app", "approvers": "bob", "ticket": "INC-1234",
        "reason": "INC-1234: worker stuck",
    }  # fmt: skip
    assert exported["command"] == shlex.join(FIX)


def test_grant_expires_and_exec_is_denied_again(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "web-1")
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
    admitted = c.exec("alice", "prod", "web-1", "date", "+%Y")
    assert admitted.returncode == 0, admitted.stderr
    assert admitted.stdout.strip().isdigit(), admitted.stdout

    gone = c.wait("admin", "--for=delete", f"grant/{grant_name}", "-n", "prod", timeout=30)
    assert gone.returncode == 0, gone.stderr
    expired = c.wait_phase("prod", "brief-web-1", "Expired")
    assert expired["status"]["grant"]["name"] == grant_name
    assert c.get("grant", grant_name, "prod") is None

    again = c.exec("alice", "prod", "web-1", "date", "+%Y")
    assert (again.stdout, again.stderr.startswith(DENIED)) == ("", True), again.stderr

    c.assert_audit_logs_verify()
    operator = types(c.records("operator", "--request", "brief-web-1"))
    assert operator[:4] == [
        "request.created", "request.approval", "request.approved", "grant.created"
    ]  # fmt: skip
    assert "grant.expired" in operator[4:]
    allowed = c.records("webhook", "--grant", grant_name, "--type", "action.allowed")
    assert [r["action"]["command"] for r in allowed] == [["date", "+%Y"]]


def test_revoked_grant_stops_admitting(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "web-2")
    assert c.jit(
        "alice", "request", "attach", "web-2", "-n", "prod", "--for", "10m",
        "--reason", "watch the logs", "--name", "attach-web-2",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "attach-web-2", "Pending")
    assert c.jit("bob", "approve", "attach-web-2", "-n", "prod", "--yes").returncode == 0
    grant_name = c.wait_phase("prod", "attach-web-2", "Approved")["status"]["grant"]["name"]
    attach = c.kubectl_argv("alice", "attach", "-n", "prod", "web-2")
    with streams.streaming(attach, c.env()) as attached:
        streams.assert_new_lines(c, attached)

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
    c.run_pods("prod", "pg-0")

    denied = c.kubectl("alice", "port-forward", "-n", "prod", "pod/pg-0", ":5432", timeout=30)
    assert denied.stderr.startswith(
        "error: error upgrading connection: admission webhook "
        '"connect.actions.jitgate.dev" denied the request: jitgate denied port-forward to pod '
        "pg-0 in namespace prod: alice holds no live grant for it."
    ), denied.stderr
    assert c.jit(
        "alice", "request", "port-forward", "pg-0", "-n", "prod", "--for", "5m",
        "--reason", "look at the data", "--name", "pf-pg-0",
    ).returncode == 0  # fmt: skip
    c.wait_phase("prod", "pf-pg-0", "Pending")
    assert c.jit("carol", "approve", "pf-pg-0", "-n", "prod", "--yes").returncode == 0
    grant = c.wait_phase("prod", "pf-pg-0", "Approved")["status"]["grant"]["name"]

    argv = c.kubectl_argv("alice", "port-forward", "-n", "prod", "pod/pg-0", ":5432")
    with (
        streams.port_forward(argv, c.env()) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=30) as connection,
    ):
        connection.sendall(b"SELECT 1;\n")
        assert connection.recv(100) == b"SELECT 1;\n"  # through the API server and back
    # On a real node kubectl's WebSocket is upgraded at once: one admission review, one
    # record. (Without a kubelet the upgrade failed and kubectl retried over SPDY: two.)
    # kubectl names the ports inside the stream, not in the URL, so the API server's
    # PodPortForwardOptions (and the record) carry none.
    (allowed,) = c.records("webhook", "--grant", grant)
    assert (allowed["type"], allowed["action"]["verb"], allowed["action"]["ports"]) == (
        "action.allowed", "portforward", []
    )  # fmt: skip


def test_an_interactive_shell_runs_in_a_terminal(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "tty-0")
    grant = c.granted(
        "exec", "tty-0", "--reason", "a look", name="tty-0"
    )  # no command pinned: interactive allowed
    argv = c.kubectl_argv("alice", "exec", "-it", "-n", "prod", "tty-0", "--", "sh")

    with streams.in_terminal(argv, c.env()) as terminal:
        terminal.send("tty; echo $((6 * 7))\r")
        assert terminal.expect(r"/dev/pts/\d+\r\n42\r\n")  # a terminal at the other end
        terminal.send("stty size\r")
        assert terminal.expect(r"\n(\d+ \d+)\r\n").group(1) == f"{streams.ROWS} {streams.COLUMNS}"
        terminal.send("exit 7\r")
        assert terminal.finish() == 7

    (allowed,) = c.records("webhook", "--grant", grant)
    assert (allowed["action"]["command"], allowed["action"]["tty"]) == (["sh"], True)


def connect_reviews(c: Any) -> tuple[int, int]:
    """How often the API server has called jitgate's connect webhook: (allowed, refused)."""
    hook = "connect.actions.jitgate.dev"
    return c.webhook_reviews(hook, rejected=False), c.webhook_reviews(hook, rejected=True)


def test_one_admitted_exec_is_one_review_and_one_record(jitgate_cluster: Any) -> None:
    # kubectl 1.33 opens exec over a WebSocket and falls back to SPDY when the upgrade fails.
    # On a real node the WebSocket upgrade succeeds: the API server asks jitgate once. (With no
    # kubelet behind the node the upgrade failed after admission: two allowed records.)
    c = jitgate_cluster
    c.run_pods("prod", "once-0")
    grant = c.granted("exec", "once-0", "--reason", "once", name="once-0")
    before = connect_reviews(c)

    ran = c.exec("alice", "prod", "once-0", "true")

    assert ran.returncode == 0, ran.stderr
    after = connect_reviews(c)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)
    assert types(c.records("webhook", "--grant", grant)) == ["action.allowed"]


def test_a_refused_exec_is_reviewed_twice_and_recorded_once(jitgate_cluster: Any) -> None:
    # A refusal fails the WebSocket upgrade, so kubectl asks again over SPDY: the user sees
    # one refusal, the API server asks jitgate twice, jitgate records one denial.
    c = jitgate_cluster
    c.run_pods("prod", "twice-0")
    before = connect_reviews(c)

    refused = c.exec("alice", "prod", "twice-0", "true")

    assert refused.stderr.startswith(DENIED), refused.stderr
    assert refused.stderr.count("jitgate denied") == 1
    after = connect_reviews(c)
    assert (after[0] - before[0], after[1] - before[1]) == (0, 2)
    denied = [
        r for r in c.records("webhook", "--namespace", "prod", "--type", "action.denied")
        if r["action"].get("name") == "twice-0"
    ]  # fmt: skip
    assert len(denied) == 1, denied


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


def test_a_revoke_holds_the_moment_it_returns_with_the_operator_down(
    jitgate_cluster: Any,
) -> None:
    """With the operator stopped, nobody deletes the Grant: the webhook itself holds the revoke.
    Execs run back to back while `kubectl jit revoke` runs; none is admitted after it returned
    (the ~75 ms window a watch on Grants alone left), and the next one is denied."""
    c = jitgate_cluster
    c.run_pods("prod", "web-7")
    grant = c.granted("exec", "web-7", "--reason", "INC-75", name="revoke-web-7")
    assert c.exec("alice", "prod", "web-7", "true").returncode == 0
    stop = threading.Event()

    def hammer() -> None:
        for _ in range(200):  # bounded; each exec is a round trip through kwok
            if stop.is_set():
                return
            c.exec("alice", "prod", "web-7", "true")

    os.kill(c.operator.pid, signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = [pool.submit(hammer) for _ in range(2)]
            revoked = c.jit("bob", "revoke", "revoke-web-7", "-n", "prod", "--reason", "done")
            returned = dt.datetime.now(dt.UTC)
            stop.set()
            for future in running:
                future.result(timeout=120)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout.startswith(
            f"accessrequest.jitgate.dev/revoke-web-7 revoked: nothing is admitted under grant "
            f"{grant} any more\n"
        ), revoked.stdout
        assert f"Still pending: Grant {grant} still exists because the jitgate operator has not " \
            "deleted it yet (is it running?)" in revoked.stdout, revoked.stdout  # fmt: skip
        assert c.get("grants", grant, "prod") is not None  # nobody deleted it
        again = c.exec("alice", "prod", "web-7", "true")
        assert DENIED in again.stderr and f"grant {grant} has been revoked" in again.stderr, (
            again.stderr
        )
        allowed = [
            r for r in c.records("webhook", "--grant", grant) if r["type"] == "action.allowed"
        ]
        late = [r for r in allowed if parse_time(r["time"]) >= returned]
        assert late == [], late
    finally:
        os.kill(c.operator.pid, signal.SIGCONT)
    c.wait_phase("prod", "revoke-web-7", "Revoked", timeout=60)
