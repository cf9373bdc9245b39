"""`kubectl jit` as a real kubectl plugin against the Kubernetes API emulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from jitgate.core.clock import format_time
from jitgate.devtools.emulator import EmulatorHandle

pytestmark = pytest.mark.kubectl

# The fixtures' classes live in conftest.py, which tests cannot import (importlib mode).
Jit = Any
Operator = Any
WEBHOOK_DENIAL = (
    'admission webhook "validate.jitgate.dev" denied the request: alice requested this '
    "access and cannot approve it (AccessPolicy production does not allow self-approval)"
)


def forbid(
    handle: EmulatorHandle, method: str, message: str, subresource: str | None = None
) -> None:
    """Make the emulator answer like the API server relaying a webhook's denial."""
    criteria: list[Any] = [method, kmock.resource("jitgate.dev", "v1alpha1", "accessrequests")]
    if subresource is not None:
        criteria.append(kmock.subresource(subresource))
    status = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
              "message": message, "reason": "Forbidden", "code": 403}  # fmt: skip
    handle.emulator[tuple(criteria)] << kmock.Response(status=403, payload=status)  # type: ignore[attr-defined]


async def read_until(process: asyncio.subprocess.Process, marker: str) -> list[str]:
    """Stdout lines up to and including the first containing `marker`."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not lines or marker not in lines[-1]:
            line = await process.stdout.readline()
            assert line, f"stdout ended before {marker!r}: {lines}"
            lines.append(line.decode())
    return lines


# ------------------------------------------------------------------------------ request
async def test_request_exec_creates_the_request_from_the_models(
    jit: Jit, operator: Operator
) -> None:
    result = await jit(
        "request", "exec", "web-0", "-c", "app", "--for", "15m", "--ticket", "INC-1234",
        "--reason", "INC-1234: worker stuck", "-n", "prod", "--", "sh", "-c", "echo hi",
        user="alice",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created, hint = result.stdout.splitlines()
    match = re.fullmatch(
        r"accessrequest\.jitgate\.dev/(alice-exec-web-0-[a-z0-9]{4}) created", created
    )
    assert match, created
    name = match[1]
    assert hint == f"Ask an approver to run: kubectl jit approve {name} -n prod"
    stored = operator.request(name)
    assert stored["spec"] == {
        "actions": [{"verb": "exec", "resource": "pods", "names": ["web-0"],
                     "container": "app", "command": ["sh", "-c", "echo hi"]}],
        "duration": "15m",
        "reason": "INC-1234: worker stuck",
        "ticket": "INC-1234",
        "breakGlass": False,
    }  # fmt: skip
    assert "requester" not in stored["spec"]  # the webhook stamps it
    assert "status" not in stored


async def test_request_delete_and_scale_map_kubectl_kinds(jit: Jit, operator: Operator) -> None:
    deleted = await jit(
        "request", "delete", "deploy/web", "sts/db", "pod/web-0", "--reason", "cleanup",
        "--name", "cleanup", "-n", "prod", user="alice",
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    assert operator.request("cleanup")["spec"]["actions"] == [
        {"verb": "delete", "resource": "deployments.apps", "names": ["web"]},
        {"verb": "delete", "resource": "statefulsets.apps", "names": ["db"]},
        {"verb": "delete", "resource": "pods", "names": ["web-0"]},
    ]
    scaled = await jit(
        "-n", "prod", "request", "scale", "rs", "web-1", "--for", "30m", "--reason", "load test",
        "--name", "more", user="alice",
    )  # fmt: skip
    assert scaled.returncode == 0, scaled.stderr
    spec = operator.request("more")["spec"]
    assert spec["actions"] == [
        {"verb": "scale", "resource": "replicasets.apps", "names": ["web-1"]}
    ]
    assert spec["duration"] == "30m"


async def test_break_glass_requests_say_what_happens_next(jit: Jit, operator: Operator) -> None:
    result = await jit(
        "request", "exec", "db-0", "-n", "prod", "--break-glass", "--for", "30m",
        "--reason", "SEV1: primary database is down", "--name", "sev1", "--timeout", "1s",
        user="carol",
    )  # fmt: skip
    # It waits for the outcome (here no operator acts, so it times out: exit 5).
    assert result.returncode == 5, result.stderr
    assert result.stdout.splitlines() == [
        "accessrequest.jitgate.dev/sev1 created",
        "Break-glass: the operator grants it at once if the policy lets you, and flags it "
        "for review.",
        "Waiting up to 1s for a decision on accessrequest.jitgate.dev/sev1...",
    ]
    assert operator.request("sev1")["spec"]["breakGlass"] is True


async def test_request_with_a_taken_name_says_so(jit: Jit, operator: Operator) -> None:
    operator.seed("fix-web-0")
    result = await jit(
        "request", "attach", "web-0", "--reason", "x", "--name", "fix-web-0", "-n", "prod"
    )
    assert result.returncode == 1
    assert result.stderr == 'Error: accessrequest "fix-web-0" already exists in namespace "prod"\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["request", "scale", "pod/web-0", "--reason", "x"],
         "Error: scale applies to deployments, statefulsets, replicasets, replicationcontrollers "
         "and jobs, not pods\n"),
        (["request", "delete", "gizmo/x", "--reason", "x"],
         'Error: unknown kind "gizmo"; use one of'),
        (["request", "exec", "web-0"], "Error: the following arguments are required: --reason"),
        (["request", "exec", "web-0", "--reason", "x", "--for", "soon"],
         "Error: argument --for: duration 'soon' is not a Go duration"),
        (["request", "attach", "web-0", "--reason", "x", "--", "sh"],
         "Error: a command after -- applies only to `kubectl jit request exec`"),
        (["approve"], "Error: the following arguments are required: NAME"),
        (["frobnicate"], "Error: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
async def test_bad_usage_is_one_error_line_and_exit_2(
    jit: Jit, args: list[str], message: str
) -> None:
    result = await jit(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------ list and show
def soon() -> dt.datetime:
    """A grant end that `kubectl jit` shows as 14m from now, seconds from now."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14, seconds=30)


def seed_three(operator: Operator) -> None:
    now = dt.datetime.now(dt.UTC)
    operator.seed(
        "alice-exec-web-0-x7k2",
        status={"phase": "Pending", "policy": "production", "requiredApprovals": 2,
                "pendingDeadline": format_time(now + dt.timedelta(minutes=50, seconds=30)),
                "approvals": [{"user": "bob", "decision": "Approve", "comment": "ok",
                               "time": format_time(now), "specDigest": "sha256:00"}]},
    )  # fmt: skip
    operator.seed(
        "carol-delete-web-k2x7",
        requester="carol",
        actions=[{"verb": "delete", "resource": "deployments.apps", "names": ["web"]}],
        ticket="CHG-7",
        status={"phase": "Approved", "policy": "production", "requiredApprovals": 1,
                "grant": {"name": "carol-delete-web-k2x7-abcd", "expiresAt": format_time(soon())},
                "approvals": [{"user": "bob", "decision": "Approve"}]},
    )  # fmt: skip
    operator.seed("dave-scale-db-q9zz", requester="dave", namespace="staging",
                  actions=[{"verb": "scale", "resource": "statefulsets.apps", "names": ["db"]}],
                  status={"phase": "Denied", "requiredApprovals": 1,
                          "approvals": [{"user": "bob", "decision": "Deny"}]})  # fmt: skip


async def test_list_prints_a_table_like_kubectl_get(jit: Jit, operator: Operator) -> None:
    seed_three(operator)
    result = await jit("list", "-n", "prod")
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["NAME", "PHASE", "REQUESTER", "ACTIONS", "APPROVALS", "EXPIRES", "AGE"]
    assert rows[0][:6] == ["alice-exec-web-0-x7k2", "Pending", "alice", "exec", "pod/web-0", "1/2"]
    assert rows[0][6] == "50m"  # the pending deadline
    assert rows[1][:7] == ["carol-delete-web-k2x7", "Approved", "carol", "delete",
                           "deployment/web", "1/1", "14m"]  # fmt: skip
    assert len(rows) == 2


async def test_list_all_namespaces_pending_and_machine_output(jit: Jit, operator: Operator) -> None:
    seed_three(operator)
    every = await jit("list", "-A")
    lines = every.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["prod", "alice-exec-web-0-x7k2", "Pending"],
        ["prod", "carol-delete-web-k2x7", "Approved"],
        ["staging", "dave-scale-db-q9zz", "Denied"],
    ]
    mine = await jit("list", "--mine", "-A", "-o", "json", user="carol")
    assert [item["metadata"]["name"] for item in json.loads(mine.stdout)["items"]] == [
        "carol-delete-web-k2x7"
    ]
    none = await jit("list", "--mine", "-A", user="bob")
    assert (none.stdout, none.stderr) == ("", "No access requests of yours found.\n")
    wide = await jit("list", "-n", "prod", "-o", "wide")
    assert wide.stdout.splitlines()[0].split()[-4:] == ["POLICY", "GRANT", "TICKET", "REASON"]
    assert "CHG-7" in wide.stdout.splitlines()[2]
    as_yaml = await jit("list", "-n", "staging", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["items"][0]["spec"]["requester"]["user"] == "dave"
    empty = await jit("list", "-n", "nowhere")
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0, "", "No resources found in nowhere namespace.\n"
    )  # fmt: skip


async def test_kubeconfig_from_the_environment_and_the_contexts_namespace(
    jit: Jit, operator: Operator, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    operator.seed("in-prod", status={"phase": "Pending"})
    operator.seed("in-default", namespace="default", status={"phase": "Pending"})
    empty = emulator.write_kubeconfig(tmp_path / "empty", "nobody")
    prod = emulator.write_kubeconfig(tmp_path / "prod", "bob", "prod")
    both = {"KUBECONFIG": f"{empty}{os.pathsep}{prod}"}
    result = await jit("list", "--context", "bob", env=both)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["NAME", "in-prod"]
    other = await jit("list", env={"KUBECONFIG": str(prod)}, user="bob")
    assert [line.split()[0] for line in other.stdout.splitlines()] == ["NAME", "in-prod"]
    unknown = await jit("list", "--context", "nobody-here", env=both)
    assert (unknown.returncode, unknown.stderr) == (
        2, 'Error: context "nobody-here" not found in the kubeconfig\n'
    )  # fmt: skip


async def test_list_skips_a_malformed_request_with_a_warning(jit: Jit, operator: Operator) -> None:
    operator.seed("good", status={"phase": "Pending"})
    operator.seed("odd", actions=[{"verb": "reboot"}])
    result = await jit("list", "-n", "prod")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["NAME", "good"]
    assert result.stderr.startswith(
        'Warning: skipped accessrequest "odd" is not a valid AccessRequest: spec.actions.0.verb'
    )


async def test_show_tells_what_who_when_and_the_grant(jit: Jit, operator: Operator) -> None:
    now, until = dt.datetime.now(dt.UTC), soon()
    operator.seed(
        "fix-web-0",
        actions=[{"verb": "exec", "resource": "pods", "names": ["web-0"], "container": "app",
                  "command": ["sh", "-c", "kill -HUP 1"]}],
        duration="15m",
        ticket="INC-1234",
        status={"phase": "Approved", "policy": "production", "requiredApprovals": 2,
                "approvals": [
                    {"user": "bob", "decision": "Approve", "comment": "ok",
                     "time": "2026-11-21T10:00:00Z", "specDigest": "sha256:00"},
                    {"user": "carol", "decision": "Approve", "time": "2026-11-21T10:01:00Z"}],
                "grant": {"name": "fix-web-0-x7k2", "expiresAt": format_time(until)},
                "conditions": [{"type": "Approved", "status": "True", "reason": "Threshold",
                                "message": "2 of 2 approvals",
                                "lastTransitionTime": format_time(now)}]},
    )  # fmt: skip
    result = await jit("show", "fix-web-0", "-n", "prod")
    assert result.returncode == 0, result.stderr
    fields = dict(
        re.split(r":\s+", line, maxsplit=1)
        for line in result.stdout.splitlines()
        if re.match(r"^\S[^:]*:\s+\S", line)
    )
    assert fields["Phase"] == "Approved"
    assert fields["Requester"] == "alice (groups: developers)"
    assert fields["Reason"] == "INC-1234: worker stuck"
    assert fields["Ticket"] == "INC-1234"
    assert fields["Duration"] == "15m"
    assert fields["Policy"] == "production"
    assert fields["Grant"] == f"fix-web-0-x7k2, until {format_time(until)} (in 14m)"
    assert "  exec pod/web-0 (container app, command: sh -c 'kill -HUP 1')" in result.stdout
    assert '  Approve  bob  2026-11-21T10:00:00Z  "ok"' in result.stdout
    assert "  Approve  carol  2026-11-21T10:01:00Z" in result.stdout
    assert re.search(r"Approved\s+True\s+Threshold\s+\S+\s+2 of 2 approvals", result.stdout)
    as_json = await jit("show", "fix-web-0", "-n", "prod", "-o", "json")
    assert json.loads(as_json.stdout)["status"]["grant"]["name"] == "fix-web-0-x7k2"


# ----------------------------------------------------------------------------- decisions
async def test_approve_creates_the_approvals_list_then_appends(
    jit: Jit, operator: Operator
) -> None:
    operator.seed("fix-web-0", status={"phase": "Pending", "requiredApprovals": 2})
    first = await jit("approve", "fix-web-0", "-n", "prod", "-m", "ok", "--yes", user="bob")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        "accessrequest.jitgate.dev/fix-web-0 approval recorded\n"
        "Pending: 1 of 2 approvals; waiting for 1 more\n"
    )
    second = await jit("approve", "fix-web-0", "-n", "prod", "-y", user="carol")
    assert second.returncode == 0, second.stderr
    assert operator.request("fix-web-0")["status"]["approvals"] == [
        {"decision": "Approve", "comment": "ok"},
        {"decision": "Approve"},
    ]


async def test_approve_of_a_request_without_any_status(jit: Jit, operator: Operator) -> None:
    operator.seed("fresh")
    result = await jit("approve", "fresh", "-n", "prod", "--yes", user="bob")
    assert result.returncode == 0, result.stderr
    assert operator.request("fresh")["status"] == {"approvals": [{"decision": "Approve"}]}


async def test_deny_needs_a_reason_and_records_it(jit: Jit, operator: Operator) -> None:
    operator.seed("fix-web-0", status={"phase": "Pending", "approvals": []})
    result = await jit("deny", "fix-web-0", "-n", "prod", "-m", "use the runbook", "--yes")
    assert result.returncode == 0, result.stderr
    # No operator here to mark it Denied: the deny says how to follow it.
    assert result.stdout == (
        "accessrequest.jitgate.dev/fix-web-0 denial recorded\n"
        "The jitgate operator has not acted on it yet; follow it with: "
        "kubectl jit wait fix-web-0 -n prod\n"
    )
    assert operator.request("fix-web-0")["status"]["approvals"] == [
        {"decision": "Deny", "comment": "use the runbook"}
    ]


async def test_decisions_need_confirmation_or_yes(jit: Jit, operator: Operator) -> None:
    operator.seed("fix-web-0", status={"phase": "Pending"})
    result = await jit("approve", "fix-web-0", "-n", "prod", user="bob")
    assert result.returncode == 2
    assert result.stderr == (
        "Error: refusing to approve without confirmation: stdin is not a terminal; "
        "pass --yes to approve non-interactively\n"
    )
    assert "approvals" not in operator.request("fix-web-0")["status"]


@pytest.mark.parametrize(("answer", "recorded"), [("y\n", True), ("n\n", False)])
async def test_on_a_terminal_the_request_is_shown_and_confirmed(
    jit: Jit, operator: Operator, answer: str, recorded: bool
) -> None:
    operator.seed("fix-web-0", status={"phase": "Pending", "requiredApprovals": 1})
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode())  # typed ahead; the tty line discipline keeps it
        result = await jit("approve", "fix-web-0", "-n", "prod", user="bob", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert "Reason:" in result.stdout and "INC-1234: worker stuck" in result.stdout
    assert "Approve accessrequest prod/fix-web-0? [y/N]: " in result.stderr
    approvals = operator.request("fix-web-0")["status"].get("approvals", [])
    assert (result.returncode == 0) is recorded
    assert bool(approvals) is recorded
    if not recorded:
        assert "Nothing changed: accessrequest prod/fix-web-0 was not approved." in result.stderr


async def test_decisions_on_a_finished_request_are_refused(jit: Jit, operator: Operator) -> None:
    operator.seed("done", status={"phase": "Expired"})
    result = await jit("approve", "done", "-n", "prod", "--yes")
    assert result.returncode == 1
    assert result.stderr == (
        'Error: accessrequest "done" is Expired; only a Pending request can be approved or denied\n'
    )


async def test_revoke_and_cancel_set_the_annotations(jit: Jit, operator: Operator) -> None:
    operator.seed("live", status={"phase": "Approved"})
    operator.seed("waiting", status={"phase": "Pending"})
    revoked = await jit("revoke", "live", "-n", "prod", "--reason", "INC-1 closed", user="bob")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(
        "accessrequest.jitgate.dev/live revoked: nothing is admitted under"
    )
    cancelled = await jit("cancel", "waiting", "-n", "prod")
    assert cancelled.returncode == 0, cancelled.stderr
    assert operator.request("live")["metadata"]["annotations"] == {
        "jitgate.dev/revoke": "true", "jitgate.dev/revoke-reason": "INC-1 closed"
    }  # fmt: skip
    assert operator.request("waiting")["metadata"]["annotations"] == {"jitgate.dev/cancel": "true"}
    wrong = await jit("revoke", "waiting", "-n", "prod")
    assert wrong.returncode == 1
    assert wrong.stderr == (
        'Error: accessrequest "waiting" is Pending; only an Approved request can be revoked '
        "(use kubectl jit cancel)\n"
    )


# -------------------------------------------------------------------------------- review
def seed_break_glass(operator: Operator, name: str = "sev1", phase: str = "Approved") -> None:
    operator.seed(
        name, requester="carol", breakGlass=True,
        status={"phase": phase, "policy": "production", "requiredApprovals": 1,
                "grant": {"name": f"{name}-abcd", "expiresAt": format_time(soon())}},
    )  # fmt: skip


async def test_review_sets_the_annotations_and_list_and_show_tell(
    jit: Jit, operator: Operator
) -> None:
    seed_break_glass(operator)
    listed = await jit("list", "-n", "prod")
    assert [line.split()[:7] for line in listed.stdout.splitlines()[1:]] == [
        ["sev1", "Approved", "carol", "exec", "pod/web-0", "review", "required"]
    ]
    shown = await jit("show", "sev1", "-n", "prod")
    assert "Review:" in shown.stdout
    assert "review required (an approver runs: kubectl jit review sev1 -n prod)" in shown.stdout
    unconfirmed = await jit("review", "sev1", "-n", "prod", user="bob")
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr == (
        "Error: refusing to review without confirmation: stdin is not a terminal; "
        "pass --yes to review non-interactively\n"
    )
    result = await jit("review", "sev1", "-n", "prod", "-m", "justified: SEV1", "--yes", user="bob")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "accessrequest.jitgate.dev/sev1 review recorded\n"
    assert operator.request("sev1")["metadata"]["annotations"] == {
        "jitgate.dev/review": "true",
        "jitgate.dev/review-comment": "justified: SEV1",
    }
    # The webhook stamps the reviewer; here the test plays it.
    operator.handle.emulator.patch_object(
        "jitgate.dev/v1alpha1/accessrequests", "prod", "sev1",
        {"metadata": {"annotations": {"jitgate.dev/reviewed-by": "bob"}}},
    )  # fmt: skip
    listed = await jit("list", "-n", "prod")
    assert listed.stdout.splitlines()[1].split()[5:8] == ["reviewed", "by", "bob"]
    shown = await jit("show", "sev1", "-n", "prod")
    assert 'reviewed by bob: "justified: SEV1"' in shown.stdout
    again = await jit("review", "sev1", "-n", "prod", "--yes", user="bob")
    assert (again.returncode, again.stderr) == (
        1, 'Error: accessrequest "sev1" was already reviewed by bob\n'
    )  # fmt: skip


@pytest.mark.parametrize(("answer", "recorded"), [("y\n", True), ("n\n", False)])
async def test_review_on_a_terminal_is_shown_and_confirmed(
    jit: Jit, operator: Operator, answer: str, recorded: bool
) -> None:
    seed_break_glass(operator, phase="Expired")
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode())
        result = await jit("review", "sev1", "-n", "prod", user="bob", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert "Break glass:" in result.stdout
    assert "Review accessrequest prod/sev1? [y/N]: " in result.stderr
    annotations = operator.request("sev1")["metadata"].get("annotations") or {}
    assert (result.returncode == 0) is recorded
    assert (annotations == {"jitgate.dev/review": "true"}) is recorded
    if not recorded:
        assert "Nothing changed: accessrequest prod/sev1 was not reviewed." in result.stderr


async def test_review_of_what_needs_none_is_refused(jit: Jit, operator: Operator) -> None:
    operator.seed("fix-web-0", status={"phase": "Approved"})
    seed_break_glass(operator, "denied", phase="Denied")
    ordinary = await jit("review", "fix-web-0", "-n", "prod", "--yes")
    assert (ordinary.returncode, ordinary.stderr) == (
        1, 'Error: accessrequest "fix-web-0" is not a break-glass request; only break-glass '
        "requests are reviewed\n",
    )  # fmt: skip
    denied = await jit("review", "denied", "-n", "prod", "--yes")
    assert (denied.returncode, denied.stderr) == (
        1, 'Error: accessrequest "denied" is Denied; only an Approved, Expired or Revoked '
        "request can be reviewed\n",
    )  # fmt: skip
    assert "annotations" not in operator.request("fix-web-0")["metadata"]


# ---------------------------------------------------------------------------------- wait
async def test_wait_shows_each_approval_then_the_grant_window_and_the_command_to_run(
    jit: Jit, operator: Operator
) -> None:
    process = await jit.start(
        "request", "exec", "web-0", "-n", "prod", "-c", "app", "--reason", "INC-1",
        "--name", "fix-web-0", "--wait", "--timeout", "60s", "--", "ls", "-l", user="alice",
    )  # fmt: skip
    await read_until(process, "Waiting up to 1m for a decision")
    # Play the operator: Pending, one approval of two, then Approved with a Grant.
    operator.set_status(
        "fix-web-0", {"phase": "Pending", "policy": "production", "requiredApprovals": 2}
    )
    await read_until(process, "Pending under AccessPolicy production: 0 of 2 approvals so far")
    bob = {"user": "bob", "decision": "Approve"}
    operator.set_status("fix-web-0", {"approvals": [bob]})
    (line,) = await read_until(process, "approvals so far")
    assert line == "Pending: 1 of 2 approvals so far (bob); waiting for 1 more\n"
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    end = start + dt.timedelta(minutes=15)
    operator.create_grant("fix-web-0-x7k2", {
        "user": "alice", "actions": [{"verb": "exec", "names": ["web-0"]}],
        "notBefore": format_time(start), "expiresAt": format_time(end),
        "accessRequest": {"name": "fix-web-0"}, "policy": "production",
    })  # fmt: skip
    operator.set_status("fix-web-0", {
        "phase": "Approved", "approvals": [bob, {"user": "carol", "decision": "Approve"}],
        "grant": {"name": "fix-web-0-x7k2", "expiresAt": format_time(end)},
    })  # fmt: skip
    result = await jit.finish(process)
    assert result.returncode == 0, result.stderr
    approved, window, run, command = result.stdout.splitlines()
    assert approved == "accessrequest.jitgate.dev/fix-web-0 approved by bob, carol"
    assert re.fullmatch(
        f"Grant fix-web-0-x7k2 is live from {format_time(start)} until {format_time(end)} "
        r"\((14m|15m) left\)",
        window,
    ), window
    assert (run, command) == ("Run:", "  kubectl exec -n prod web-0 -c app -- ls -l")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        ({"phase": "Denied", "approvals": [{"user": "bob", "decision": "Deny",
                                             "comment": "use the runbook"}]}, 3,
         'Error: accessrequest "fix-web-0" was not approved: denied by bob: use the runbook\n'),
        ({"phase": "Expired",
          "message": "no decision before the pending deadline 2026-11-21T11:00:00Z"}, 4,
         'Error: accessrequest "fix-web-0" was not approved: no decision before the pending '
         "deadline 2026-11-21T11:00:00Z\n"),
        ({"phase": "Cancelled", "message": "cancelled by alice"}, 6,
         'Error: accessrequest "fix-web-0" was not approved: cancelled by alice\n'),
    ],
)  # fmt: skip
async def test_wait_exits_with_the_code_of_each_outcome(
    jit: Jit, operator: Operator, status: dict[str, object], code: int, message: str
) -> None:
    process = await jit.start(
        "request", "exec", "web-0", "-n", "prod", "--reason", "r", "--name", "fix-web-0", "--wait"
    )
    await read_until(process, "Waiting up to 10m")
    operator.set_status("fix-web-0", status)
    result = await jit.finish(process)
    assert (result.returncode, result.stderr) == (code, message)


async def test_wait_gives_up_after_its_timeout_and_says_how_to_resume(
    jit: Jit, operator: Operator
) -> None:
    result = await jit(
        "request", "exec", "web-0", "-n", "prod", "--reason", "r", "--name", "slow",
        "--wait", "--timeout", "1s",
    )  # fmt: skip
    assert result.returncode == 5
    assert result.stderr.startswith('Error: timed out after 1s waiting for accessrequest "slow"')
    assert result.stderr.endswith("; resume with: kubectl jit wait slow -n prod\n")


async def test_ctrl_c_exits_130_and_wait_resumes(jit: Jit, operator: Operator) -> None:
    process = await jit.start(
        "request", "exec", "web-0", "-n", "prod", "--reason", "r", "--name", "fix-web-0", "--wait"
    )
    await read_until(process, "Waiting up to 10m")
    process.send_signal(signal.SIGINT)  # kubectl execs the plugin: this is kubectl-jit
    interrupted = await jit.finish(process)
    assert (interrupted.returncode, interrupted.stderr) == (
        130, "Error: interrupted while waiting; resume with: kubectl jit wait fix-web-0 -n prod\n"
    )  # fmt: skip

    resumed = await jit.start("wait", "fix-web-0", "-n", "prod", "--timeout", "30s")
    await read_until(resumed, "Waiting up to 30s for a decision on accessrequest")
    operator.set_status("fix-web-0", {"phase": "Denied", "message": "denied by bob: no"})
    result = await jit.finish(resumed)
    assert (result.returncode, result.stderr) == (
        3, 'Error: accessrequest "fix-web-0" was not approved: denied by bob: no\n'
    )  # fmt: skip
    ended = await jit("wait", "fix-web-0", "-n", "prod")
    assert ended.returncode == 3  # already decided: answered at once


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "args",
    [["show", "nope"], ["approve", "nope", "--yes"], ["deny", "nope", "-m", "x", "--yes"],
     ["revoke", "nope"], ["cancel", "nope"]],
)  # fmt: skip
async def test_no_such_request(jit: Jit, args: list[str]) -> None:
    result = await jit(*args, "-n", "prod")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == 'Error: accessrequest "nope" not found in namespace "prod"\n'


async def test_the_webhooks_denial_is_passed_through(
    jit: Jit, operator: Operator, emulator: EmulatorHandle
) -> None:
    operator.seed("fix-web-0", status={"phase": "Pending"})
    forbid(emulator, "patch", WEBHOOK_DENIAL, subresource="status")
    result = await jit("approve", "fix-web-0", "-n", "prod", "--yes", user="alice")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: {WEBHOOK_DENIAL}\n"


async def test_a_refused_creation_is_passed_through(jit: Jit, emulator: EmulatorHandle) -> None:
    message = (
        'admission webhook "validate.jitgate.dev" denied the request: no AccessPolicy lets '
        "alice request exec in namespace prod"
    )
    forbid(emulator, "post", message)
    result = await jit("request", "exec", "web-0", "-n", "prod", "--reason", "r", user="alice")
    assert (result.returncode, result.stderr) == (1, f"Error: {message}\n")


async def test_no_cluster_reachable(jit: Jit, closed_port: int, tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{closed_port}"}}],
        "users": [{"name": "alice", "user": {"token": "alice"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "alice"}}],
    }  # fmt: skip
    path = tmp_path / "unreachable"
    path.write_text(yaml.safe_dump(config))
    result = await jit("list", kubeconfig=path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: cannot reach the Kubernetes API at https://127.0.0.1:{closed_port}: "
        "connection refused\n"
    )


async def test_a_missing_kubeconfig_is_bad_usage(jit: Jit, tmp_path: Path) -> None:
    result = await jit("list", kubeconfig=tmp_path / "missing")
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: no kubeconfig found at {tmp_path / 'missing'}; "
        "pass --kubeconfig or set KUBECONFIG\n"
    )
