"""The requester's and the approver's loop end to end, with the real kubectl: `--wait` shows
the approval and prints the command to run, a denial exits 3, `kubectl jit wait` resumes, the
approver's queue lists what bob may decide, and `revoke --reason` lands on the request, in the
audit record and in `show`."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]


def start_jit(c: Any, who: str, *args: str) -> subprocess.Popen[str]:
    argv = [c.api.kubectl_path, "jit", "--kubeconfig", str(c.api.kubeconfig(who)), *args]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=c.env()
    )


def read_line(process: subprocess.Popen[str], marker: str) -> str:
    """The first stdout line containing `marker` (all of the output if it exits first)."""
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if marker in line:
            return line
    raise AssertionError(f"{marker!r} never came: {seen}{finish(process)}")


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_wait_reports_the_approval_and_the_command_to_run(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "loop-0")
    waiting = start_jit(
        c, "alice", "request", "exec", "loop-0", "-n", "prod", "-c", "app", "--for", "5m",
        "--reason", "INC-31: look", "--name", "loop-exec", "--wait", "--", "ls",
    )  # fmt: skip
    read_line(waiting, "Waiting up to")
    c.wait_phase("prod", "loop-exec", "Pending")

    queue = c.jit("bob", "list", "--pending", "-n", "prod")
    assert queue.returncode == 0, queue.stderr
    (row,) = [line for line in queue.stdout.splitlines() if line.startswith("loop-exec ")]
    assert re.search(r"exec pod/loop-0 \(container app, command: ls\)\s+5m\s+0/1\s+in ", row), row
    assert not queue.stderr  # bob may read the policies: the queue is what he may decide
    assert row.endswith("INC-31: look")
    # carol (sre) may decide it too; alice, who may not read the policies, is told her
    # queue is not filtered.
    carols = c.jit("carol", "list", "--pending", "-n", "prod")
    assert "loop-exec" in carols.stdout, carols.stderr
    hers = c.jit("alice", "list", "--pending", "-n", "prod")
    assert hers.stderr.startswith("Warning: you may not read AccessPolicies"), hers.stderr

    approved = c.jit("bob", "approve", "loop-exec", "-n", "prod", "--yes")
    assert approved.returncode == 0, approved.stderr
    code, out, err = finish(waiting)
    assert code == 0, err
    lines = out.splitlines()
    assert "Pending under AccessPolicy production: 0 of 1 approvals so far; waiting for 1 more" in (
        lines
    )
    assert "accessrequest.jitgate.dev/loop-exec approved by bob" in lines
    assert lines[-2:] == ["Run:", "  kubectl exec -n prod loop-0 -c app -- ls"]
    # kubectl get: ACTIONS names the target, EXPIRES the grant's end (never <invalid>).
    for kind in ("accessrequest/loop-exec", "grants"):
        got = c.ok("bob", "get", kind, "-n", "prod")
        assert "exec pod/loop-0" in got, got
        assert "<invalid>" not in got, got
    # The printed command is the one the grant admits (up to the missing kubelet).
    ran = c.exec("alice", "prod", "loop-0", "ls")
    assert c.no_kubelet_error() in ran.stderr, ran.stderr

    revoked = c.jit("bob", "revoke", "loop-exec", "-n", "prod", "--reason", "INC-31 closed")
    assert revoked.returncode == 0, revoked.stderr
    assert re.fullmatch(
        r"accessrequest.jitgate.dev/loop-exec revoked: nothing is admitted under grant "
        r"loop-exec-\w+ any more\n"
        r"Revoked at \S+: grant loop-exec-\w+ revoked by bob: INC-31 closed\n",
        revoked.stdout,
    ), revoked.stdout
    shown = c.jit("alice", "show", "loop-exec", "-n", "prod")
    assert re.search(r"Grant:\s+loop-exec-\w+, revoked at \S+ \(\w+ ago\)", shown.stdout)
    assert re.search(r"Duration:\s+5m\n", shown.stdout), shown.stdout
    assert re.search(r"Revoke reason:\s+INC-31 closed\n", shown.stdout), shown.stdout
    (record,) = [
        r for r in c.records("operator", "--request", "loop-exec") if r["type"] == "grant.revoked"
    ]
    assert (record["actor"]["user"], record["reason"]) == ("bob", "revoked by bob: INC-31 closed")
    # Waiting on a request whose grant was revoked ends at once, with its own code.
    again = c.jit("alice", "wait", "loop-exec", "-n", "prod")
    assert again.returncode == 6, again.stderr


def test_a_denial_exits_3_and_wait_resumes(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "loop-1")
    asked = c.jit(
        "alice", "request", "attach", "loop-1", "-n", "prod", "--reason", "INC-32",
        "--name", "loop-attach", "--wait", "--timeout", "1s",
    )  # fmt: skip
    assert asked.returncode == 5, asked.stderr
    assert asked.stderr.endswith("; resume with: kubectl jit wait loop-attach -n prod\n")

    resumed = start_jit(c, "alice", "wait", "loop-attach", "-n", "prod")
    read_line(resumed, "Waiting up to")
    c.wait_phase("prod", "loop-attach", "Pending")
    denied = c.jit("bob", "deny", "loop-attach", "-n", "prod", "-m", "use the runbook", "--yes")
    assert denied.returncode == 0, denied.stderr
    assert denied.stdout.splitlines()[-1].startswith("Denied: "), denied.stdout
    code, _, err = finish(resumed)
    assert (code, err) == (
        3, 'Error: accessrequest "loop-attach" was not approved: denied by bob: use the runbook\n'
    )  # fmt: skip
