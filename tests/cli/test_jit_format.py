"""How `kubectl jit list` and `show` render requests, at a fixed time."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from support.clocks import NOW

from jitgate.cli.kubectl_jit.views import (
    approvals_count,
    describe_action,
    human_duration,
    render_show,
    render_table,
    review_state,
    table_header,
    table_row,
)
from jitgate.core.api import AccessRequest, RequestedAction


def request(**status: Any) -> AccessRequest:
    return AccessRequest.model_validate(
        {
            "metadata": {"name": "fix-web-0", "namespace": "prod",
                         "creationTimestamp": "2026-11-21T09:57:00Z"},
            "spec": {"actions": [{"verb": "exec", "names": ["web-0"]}], "reason": "INC-1",
                     "requester": {"user": "alice", "groups": ["dev"]}},
            "status": status,
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (200, "3m20s"),
        (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (7 * 3600 + 60, "7h1m"),
        (47 * 3600, "47h"), (2 * 86400 + 3600, "2d1h"), (8 * 86400, "8d"),
        (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
    ],
)  # fmt: skip
def test_human_durations_match_kubectl(seconds: float, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text


def test_actions_are_described_like_kubectl_names_objects() -> None:
    assert describe_action(RequestedAction(verb="exec", names=["web-0"])) == "exec pod/web-0"
    scale = RequestedAction(verb="scale", resource="statefulsets.apps", names=["db", "cache"])
    assert describe_action(scale) == "scale statefulset/db,cache"
    assert describe_action(RequestedAction(verb="delete", resource="pods")) == "delete pod/*"


def test_approvals_count_distinct_approvers_against_the_requirement() -> None:
    approvals = [{"user": "bob", "decision": "Approve"}, {"user": "bob", "decision": "Approve"},
                 {"user": "carol", "decision": "Deny"}]  # fmt: skip
    assert approvals_count(request(requiredApprovals=2, approvals=approvals)) == "1/2"
    assert approvals_count(request()) == "0/?"


def test_table_rows_show_the_grant_end_or_the_pending_deadline() -> None:
    pending = request(phase="Pending", requiredApprovals=1, pendingDeadline="2026-11-21T11:00:00Z")
    approved = request(phase="Approved", grant={"name": "g", "expiresAt": "2026-11-21T10:15:00Z"})
    rows = [
        table_header(with_namespace=True, wide=False),
        table_row(pending, NOW, with_namespace=True, wide=False),
        table_row(approved, NOW, with_namespace=True, wide=False),
        table_row(request(phase="Denied"), NOW, with_namespace=True, wide=False),
    ]
    assert render_table(rows).splitlines() == [
        "NAMESPACE   NAME        PHASE      REQUESTER   ACTIONS          APPROVALS   EXPIRES   AGE",
        "prod        fix-web-0   Pending    alice       exec pod/web-0   0/1         60m       3m",
        "prod        fix-web-0   Approved   alice       exec pod/web-0   0/?         15m       3m",
        "prod        fix-web-0   Denied     alice       exec pod/web-0   0/?         -         3m",
    ]


def test_show_lists_decisions_grant_and_who_stopped_it() -> None:
    shown = request(
        phase="Revoked",
        policy="production",
        requiredApprovals=1,
        approvals=[{"user": "bob", "decision": "Approve", "comment": "ok",
                    "time": "2026-11-21T09:58:00Z"}],
        grant={"name": "fix-web-0-x7k2", "expiresAt": "2026-11-21T10:13:00Z"},
        conditions=[{"type": "Granted", "status": "False", "reason": "Revoked",
                     "lastTransitionTime": "2026-11-21T09:59:00Z"}],
    )  # fmt: skip
    shown = shown.model_copy(
        update={"metadata": shown.metadata.model_copy(
            update={"annotations": {"jitgate.dev/revoked-by": "carol",
                                    "jitgate.dev/revoke-reason": "INC-1 closed"}})}
    )  # fmt: skip
    text = render_show(shown, NOW, duration="15m (the policy's default)")
    fields = dict(line.split(":  ", 1) for line in text.splitlines() if ":  " in line[:16])
    fields = {key: value.strip() for key, value in fields.items()}
    assert fields["Phase"] == "Revoked"
    assert fields["Requester"] == "alice (groups: dev)"
    assert fields["Created"] == "2026-11-21T09:57:00Z (3m ago)"
    # Ended: when it was revoked, not "until … (in 13m)"; the real duration, not "policy default".
    assert fields["Grant"] == "fix-web-0-x7k2, revoked at 2026-11-21T09:59:00Z (60s ago)"
    assert fields["Duration"] == "15m (the policy's default)"
    assert (fields["Revoked by"], fields["Revoke reason"]) == ("carol", "INC-1 closed")
    assert fields["Approvals"] == "1/1 (given/required)"
    assert "Pending until" not in fields
    assert "  exec pod/web-0 (any container, any command, interactive)\n" in text
    assert '  Approve  bob  2026-11-21T09:58:00Z  "ok"\n' in text


def test_an_expired_grant_says_when_it_expired() -> None:
    grant = {"name": "fix-web-0-x7k2", "expiresAt": "2026-11-21T09:55:00Z"}
    text = render_show(request(phase="Expired", grant=grant), NOW)
    assert "fix-web-0-x7k2, expired at 2026-11-21T09:55:00Z (5m ago)\n" in text
    live = render_show(
        request(phase="Approved", grant={**grant, "expiresAt": "2026-11-21T10:12:00Z"}), NOW
    )
    assert "fix-web-0-x7k2, until 2026-11-21T10:12:00Z (in 12m)" in live


def break_glass(phase: str | None, **annotations: str) -> AccessRequest:
    return AccessRequest.model_validate(
        {
            "metadata": {"name": "sev1", "namespace": "prod", "annotations": annotations},
            "spec": {"actions": [{"verb": "exec"}], "reason": "SEV1", "breakGlass": True},
            "status": {"phase": phase} if phase else {},
        }
    )


def test_break_glass_requests_show_their_review_instead_of_approvals() -> None:
    assert review_state(request(phase="Approved")) is None
    assert review_state(break_glass(None)) is None
    assert review_state(break_glass("Denied")) is None
    for phase in ("Approved", "Expired", "Revoked"):
        assert review_state(break_glass(phase)) == "review required"
    reviewed = break_glass("Expired", **{"jitgate.dev/reviewed-by": "bob"})
    assert review_state(reviewed) == "reviewed by bob"
    row = table_row(reviewed, NOW, with_namespace=False, wide=False)
    assert row[4] == "reviewed by bob"
    shown = render_show(
        break_glass("Approved", **{"jitgate.dev/reviewed-by": "bob",
                                   "jitgate.dev/review-comment": "fine"}), NOW
    )  # fmt: skip
    assert re.search(r'^Review:\s+reviewed by bob: "fine"$', shown, re.MULTILINE)


def test_show_and_the_queue_say_who_else_must_approve_after_a_denial() -> None:
    from jitgate.cli.kubectl_jit.approver_queue import Entry, queue_row

    hold = {"request": "first", "deniedBy": "bob", "deniedAt": "2026-11-21T09:50:00Z",
            "approvers": {"users": ["bob"], "groups": ["sre"]}}  # fmt: skip
    held = request(phase="Pending", requiredApprovals=1, afterDenial=hold)
    text = render_show(held, NOW)
    assert (
        "After denial:   also needs 1 approval from bob or group sre "
        "(after bob denied first at 2026-11-21T09:50:00Z)"
    ) in text
    row = queue_row(Entry(held, None), NOW, with_namespace=False)
    assert "0/1 + 1 from bob or group sre (after a denial)" in row


def test_show_names_a_rule_approval_with_the_digest_of_its_inputs() -> None:
    digest = "sha256:" + "ab" * 32
    auto = {"policy": "production", "rule": "on-call-ls", "inputsDigest": digest,
            "time": "2026-11-21T09:58:00Z"}  # fmt: skip
    ruled = request(
        phase="Approved", policy="production", requiredApprovals=1, autoApprovals=[auto]
    )
    text = render_show(ruled, NOW)
    assert approvals_count(ruled) == "0/1 + rule on-call-ls"
    assert (
        f"  Approve  rule on-call-ls of AccessPolicy production  2026-11-21T09:58:00Z  "
        f"inputs {digest}\n"
    ) in text


def test_show_names_uses_a_scheduled_start_and_the_extension_chain() -> None:
    shown = AccessRequest.model_validate(
        {
            **request().model_dump(by_alias=True, exclude_none=True, mode="json"),
            "metadata": {"name": "fix-web-0-ext-k2x7", "namespace": "prod"},
            "spec": {
                **request().spec.to_wire(),
                "maxUses": 3,
                "startAt": "2026-11-21T12:00:00Z",
                "extends": {"name": "fix-web-0"},
            },
        }
    )
    text = render_show(shown, NOW, chain=("fix-web-0", "fix-web-0-ext-k2x7"), uses=1)
    assert "Max uses:" in text and "3 (1 used)\n" in text
    assert "2026-11-21T12:00:00Z (in 120m)" in text
    assert "Extends:" in text
    assert "fix-web-0 → fix-web-0-ext-k2x7 (this)\n" in text
