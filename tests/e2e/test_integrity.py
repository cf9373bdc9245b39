"""What nobody can do with plain kubectl, whatever RBAC allows: forge a requester, write a
Grant, edit a request's spec, rewrite or remove an earlier approval."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import objects

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

GRANTS_HOOK = 'admission webhook "grants.jitgate.dev" denied the request'
REQUESTS_HOOK = 'admission webhook "accessrequests.jitgate.dev" denied the request'


def forged_request(c: Any, name: str) -> str:
    body = objects.access_request(
        name, "prod", reason="let me in", requester=objects.requester("bob", ("sre",))
    )
    return json.dumps(body)


@pytest.mark.parametrize("verb", ["create", "apply"])
def test_the_requester_is_whoever_authenticated(jitgate_cluster: Any, verb: str) -> None:
    c = jitgate_cluster
    name = f"forged-by-{verb}"

    written = c.kubectl("alice", verb, "-f", "-", input=forged_request(c, name))

    assert written.returncode == 0, written.stderr
    stored = c.get("accessrequest", name, "prod")
    assert stored["spec"]["requester"] == {
        "user": "alice",
        "groups": ["developers", "system:authenticated"],
    }
    created = c.wait_phase("prod", name, "Pending")
    assert created["spec"]["requester"]["user"] == "alice"
    (record,) = c.records("operator", "--request", name, "--type", "request.created")
    assert record["actor"]["user"] == "alice"


def test_only_the_operator_writes_grants(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    assert c.kubectl(
        "alice", "auth", "can-i", "create", "grants.jitgate.dev", "-n", "prod"
    ).stdout == ("yes\n")  # RBAC would let her: the webhook is what stands in the way
    own = {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "Grant",
        "metadata": {"name": "all-mine", "namespace": "prod"},
        "spec": {
            "user": "alice",
            "actions": [{"verb": "exec", "resource": "pods", "names": []}],
            "notBefore": "2020-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T00:00:00Z",
            "accessRequest": {"name": "none", "uid": "00000000-0000-4000-8000-000000000000"},
            "policy": "production",
            "approvals": [],
        },
    }
    created = c.kubectl("alice", "create", "-f", "-", input=json.dumps(own))
    assert created.returncode == 1
    assert created.stderr == (
        f'Error from server (Forbidden): error when creating "STDIN": {GRANTS_HOOK}: only the '
        "jitgate operator (system:serviceaccount:jitgate:jitgate-operator) may create Grants; "
        "ask for access with kubectl jit request instead\n"
    )
    assert c.get("grant", "all-mine", "prod") is None

    # A real Grant, issued by the operator, cannot be touched either.
    c.create_pods("prod", "tamper-0")
    asked = c.jit("alice", "request", "exec", "tamper-0", "-n", "prod", "--reason", "r",
                  "--for", "5m", "--name", "tamper")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    c.wait_phase("prod", "tamper", "Pending")
    assert c.jit("bob", "approve", "tamper", "-n", "prod", "--yes").returncode == 0
    grant = c.wait_phase("prod", "tamper", "Approved")["status"]["grant"]["name"]

    labelled = c.kubectl("alice", "label", "grant", grant, "-n", "prod", "owner=alice")
    assert f"{GRANTS_HOOK}: only the jitgate operator" in labelled.stderr, labelled.stderr
    assert "may change Grants" in labelled.stderr
    longer = c.kubectl(
        "alice", "patch", "grant", grant, "-n", "prod", "--type=merge",
        "-p", json.dumps({"spec": {"expiresAt": "2099-01-01T00:00:00Z"}}),
    )  # fmt: skip
    assert "spec is immutable" in longer.stderr, longer.stderr  # CEL, before any webhook
    deleted = c.kubectl("alice", "delete", "grant", grant, "-n", "prod", "--wait=false")
    assert "may delete Grants" in deleted.stderr, deleted.stderr
    assert c.get("grant", grant, "prod")["spec"]["expiresAt"] != "2099-01-01T00:00:00Z"

    refusals = c.records("webhook", "--user", "alice", "--type", "action.denied")
    assert [
        (r["action"]["verb"], r["grant"], r["reason"].split(":")[0])
        for r in refusals
        if r["action"]["resource"] == "grants.jitgate.dev"
    ] == [
        ("create", "all-mine", "GrantWriteForbidden"),
        ("update", grant, "GrantWriteForbidden"),
        ("delete", grant, "GrantWriteForbidden"),
    ]
    c.assert_audit_logs_verify()


def test_nobody_edits_a_request_or_its_earlier_approvals(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    asked = c.jit("alice", "request", "delete", "pod/web-9", "-n", "prod", "--reason", "cleanup",
                  "--for", "5m", "--name", "immutable")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    c.wait_phase("prod", "immutable", "Pending")

    for who in ("alice", "admin"):
        edited = c.kubectl(
            who, "patch", "accessrequest", "immutable", "-n", "prod", "--type=merge",
            "-p", json.dumps({"spec": {"reason": "something else", "duration": "1h"}}),
        )  # fmt: skip
        assert edited.returncode == 1
        assert 'spec: Invalid value: "object": spec is immutable' in edited.stderr, edited.stderr

    assert c.jit("bob", "approve", "immutable", "-n", "prod", "-m", "fine", "--yes").returncode == 0
    c.wait_phase("prod", "immutable", "Approved")

    def status_patch(who: str, *operations: dict[str, object]) -> str:
        proc = c.kubectl(
            who, "patch", "accessrequest", "immutable", "-n", "prod", "--subresource=status",
            "--type=json", "-p", json.dumps(list(operations)),
        )  # fmt: skip
        assert proc.returncode == 1, proc.stdout
        return str(proc.stderr)

    append_only = "earlier approvals cannot be edited or removed; approvals are append-only"
    rewritten = status_patch(
        "carol", {"op": "replace", "path": "/status/approvals/0/decision", "value": "Deny"}
    )
    assert f"{REQUESTS_HOOK}: {append_only}" in rewritten, rewritten
    removed = status_patch("bob", {"op": "remove", "path": "/status/approvals/0"})
    assert f"{REQUESTS_HOOK}: {append_only}" in removed, removed
    late = status_patch(
        "carol", {"op": "add", "path": "/status/approvals/-", "value": {"decision": "Deny"}}
    )
    assert "the request is Approved, so it can no longer be approved or denied" in late, late
    phase = status_patch("bob", {"op": "replace", "path": "/status/phase", "value": "Denied"})
    assert "only the jitgate operator may change an AccessRequest's status" in phase, phase

    stored = c.get("accessrequest", "immutable", "prod")
    assert [(a["user"], a["decision"]) for a in stored["status"]["approvals"]] == [
        ("bob", "Approve")
    ]
    assert stored["spec"]["reason"] == "cleanup"
    c.assert_audit_logs_verify()
