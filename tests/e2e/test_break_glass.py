"""Break-glass end to end: carol self-activates an emergency grant, uses it at once, cannot
review it herself, and bob's `kubectl jit review` lands as `grant.reviewed` in the operator's
audit log, which the access review then no longer flags."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

REQUESTS_HOOK = 'admission webhook "accessrequests.jitgate.dev" denied the request'


def condition(request: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in request["status"]["conditions"] if c["type"] == type_)


def test_break_glass_is_granted_at_once_and_reviewed_by_another_approver(
    jitgate_cluster: Any,
) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "db-0")
    # carol's denial tells her that break-glass would let her in, with the command.
    denied = c.exec("carol", "prod", "db-0", "ls")
    assert denied.stderr.rstrip().endswith(
        "; in an emergency you may break the glass (granted at once, flagged for review): "
        'kubectl jit request exec db-0 -n prod -c app --break-glass --for 10m --reason "<why>" '
        "-- ls"
    ), denied.stderr
    # --for above the break-glass maximum is cut to it, said so; the request waits for the
    # outcome and reports it with the command to run.
    asked = c.jit(
        "carol", "request", "exec", "db-0", "-n", "prod", "--break-glass", "--for", "1h",
        "--reason", "SEV1: primary database is down", "--name", "sev1-db-0",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert asked.stderr == (
        "Note: --for 1h is more than the break-glass maxDuration 10m of AccessPolicy "
        "production; asking for 10m\n"
    )
    lines = asked.stdout.splitlines()
    assert "accessrequest.jitgate.dev/sev1-db-0 approved (break-glass: flagged for review)" in (
        lines
    ), asked.stdout
    assert lines[-2:] == ["Run:", "  kubectl exec -it -n prod db-0 -- sh"]
    assert c.get("accessrequest", "sev1-db-0", "prod")["spec"]["duration"] == "10m"

    request = c.wait_phase("prod", "sev1-db-0", "Approved")
    assert condition(request, "ReviewRequired")["status"] == "True"
    admitted = c.exec("carol", "prod", "db-0", "ls")
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
    listed = c.jit("bob", "list", "-n", "prod")
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("sev1-db-0 ")]
    assert "review required" in row

    # Neither the requester nor a non-approver may review it; jitgate, not RBAC, refuses.
    own = c.jit("carol", "review", "sev1-db-0", "-n", "prod", "--yes")
    assert (own.returncode, own.stderr) == (
        1, f"Error: {REQUESTS_HOOK}: carol activated this break-glass grant and cannot review it\n"
    )  # fmt: skip
    other = c.jit("alice", "review", "sev1-db-0", "-n", "prod", "--yes")
    assert (other.returncode, other.stderr) == (
        1, f"Error: {REQUESTS_HOOK}: alice is not an approver under AccessPolicy production, "
        "so cannot review this request\n",
    )  # fmt: skip
    reviewed = c.jit("bob", "review", "sev1-db-0", "-n", "prod", "-m", "justified: SEV1", "--yes")
    assert (reviewed.returncode, reviewed.stdout) == (
        0, "accessrequest.jitgate.dev/sev1-db-0 review recorded as bob\n"
    ), reviewed.stderr  # fmt: skip
    waited = c.wait(
        "admin", "--for=condition=ReviewRequired=False", "accessrequest/sev1-db-0", "-n", "prod"
    )
    assert waited.returncode == 0, waited.stderr
    flag = condition(c.get("accessrequest", "sev1-db-0", "prod"), "ReviewRequired")
    assert (flag["reason"], flag["message"]) == ("Reviewed", "reviewed by bob: justified: SEV1")
    shown = c.jit("bob", "show", "sev1-db-0", "-n", "prod")
    assert 'reviewed by bob: "justified: SEV1"' in shown.stdout

    operator = c.records("operator", "--request", "sev1-db-0")
    assert [r["type"] for r in operator] == [
        "request.created", "request.approved", "grant.created", "grant.reviewed"
    ]  # fmt: skip
    review = operator[-1]
    assert review["actor"]["user"] == "bob"
    assert review["reason"] == "justified: SEV1"
    assert review["grant"] == request["status"]["grant"]["name"]
    report = c.audit("operator", "report", "--since", "1d", "--output", "json")
    assert report.returncode == 0, report.stderr
    findings = json.loads(report.stdout)["findings"]
    assert not any(
        f["kind"] == "break-glass-unreviewed" and "sev1-db-0" in f["detail"] for f in findings
    )
    c.assert_audit_logs_verify()


def test_a_break_glass_reason_too_short_is_refused_at_creation(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    asked = c.jit(
        "carol", "request", "exec", "db-0", "-n", "prod", "--break-glass", "--for", "5m",
        "--reason", "db down", "--name", "terse-db-0",
    )  # fmt: skip
    assert asked.returncode == 1, asked.stdout
    assert asked.stderr == (
        f"Error: {REQUESTS_HOOK}: a break-glass reason needs at least 20 characters "
        "(AccessPolicy production), not 7: say what is broken and why it cannot wait for an "
        "approval; every approver is told\n"
    )
    assert c.get("accessrequest", "terse-db-0", "prod") is None
