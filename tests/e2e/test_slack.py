"""Approve from Slack on the real API server: a signed click is written as the mapped approver
through impersonation, so the webhook stamps the real approver (and `via: slack`) and every
approval rule applies unchanged; the impersonation RBAC is the chart's, naming exactly the
mapped users and groups.

The Slack app runs in-process here (the tier's operator process runs without it), with the
operator's own identity, against a local stub of the Slack Web API: no traffic leaves
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from apiserver.harness import free_port
from chart import render
from e2e import manifests
from jitgate.operator.config import SlackConfig
from jitgate.operator.kube import KubeApi
from jitgate.operator.slack.app import SlackApp
from support import slack

from jitgate.audit.connect import open_audit_writer, open_log_reader
from jitgate.audit.verify import Entry
from jitgate.core.clock import SYSTEM_CLOCK
from jitgate.kube import load_credentials

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

# The chart's mapping (and so its RBAC): mallory is in the app's file but not in the chart's
# values, so the API server refuses to let jitgate act as her.
CHART_USERS = {k: v for k, v in slack.USERS.items() if k in ("UBOB", "UCAROL", "UALICE")}
APP_USERS = {**CHART_USERS, "UMALLORY": {"user": "mallory", "groups": ["sre"]}}


def request(c: Any, who: str, name: str) -> None:
    asked = c.jit(
        who, "request", "exec", "web-0", "-n", "prod", "--for", "5m",
        "--reason", "INC-7: checking from Slack", "--name", name,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    c.wait_phase("prod", name, "Pending")


def test_clicks_in_slack_land_as_the_real_approver_under_every_approval_rule(
    jitgate_cluster: Any, tmp_path: Path
) -> None:
    c = jitgate_cluster
    values = {"operator": {"slack": {
        "enabled": True, "channel": slack.CHANNEL, "existingSecret": "jitgate-slack",
        "tls": {"existingSecret": "jitgate-slack-tls"}, "users": CHART_USERS,
    }}}  # fmt: skip
    rendered = render.render_chart(values, namespace=manifests.RELEASE_NAMESPACE)
    c.apply("admin", *[o for o in rendered if "slack-impersonator" in o["metadata"]["name"]])

    files = slack.app_files(tmp_path / "slack")
    files.users.write_text(json.dumps({"users": APP_USERS}))
    for who, name in (
        ("alice", "slack-approve"),
        ("alice", "slack-deny"),
        ("carol", "slack-carol"),
    ):
        request(c, who, name)

    audit_url = f"file://{tmp_path / 'slack-audit'}"
    port = free_port()
    url = f"https://127.0.0.1:{port}/slack/interactions"

    async def scenario() -> dict[str, tuple[int, str]]:
        async with slack.slack_stub() as stub:
            config = SlackConfig(
                bot_token_file=files.token, signing_secret_file=files.secret,
                channel=slack.CHANNEL, users_file=files.users, tls_cert=files.cert,
                tls_key=files.key, host="127.0.0.1", port=port, api_url=stub.api_url,
            )  # fmt: skip
            credentials = load_credentials(c.api.kubeconfig("jitgate-operator"))
            kube = KubeApi(credentials)
            async with open_audit_writer(audit_url, writer_id="slack-test") as audit:
                app = SlackApp(config, clock=SYSTEM_CLOCK, kube=kube, audit=audit)
                await app.start()
                answers = {}
                try:
                    for key, action, name, user in (
                        ("self", "jitgate.approve", "slack-approve", "UALICE"),
                        ("non-approver", "jitgate.approve", "slack-carol", "UALICE"),
                        ("not-impersonable", "jitgate.approve", "slack-approve", "UMALLORY"),
                        ("approve", "jitgate.approve", "slack-approve", "UBOB"),
                        ("deny", "jitgate.deny", "slack-deny", "UCAROL"),
                    ):
                        body = slack.payload(action, f"prod/{name}", user, "1700000000.000042")
                        raw, headers = slack.signed(body, int(time.time()))
                        answers[key] = await slack.post(url, raw, headers, files.ca)
                        told = [call.args["text"] for call in stub.of("chat.postEphemeral")]
                        answers[key] = (answers[key][0], told[-1])
                    updates = stub.of("chat.update")
                    answers["update"] = (len(updates), str([u.args for u in updates]))
                finally:
                    await app.close()
                    await kube.close()
            return answers

    answers = asyncio.run(scenario())
    # Every approval rule applies as for kubectl: no self-approval, approvers only.
    assert answers["self"] == (
        200,
        "jitgate refused your click: not recorded: admission webhook "
        '"accessrequests.jitgate.dev" denied the request: alice requested this access and '
        "cannot approve it (AccessPolicy production does not allow self-approval)",
    )
    assert answers["non-approver"][1].endswith(
        "alice is not an approver under AccessPolicy production"
    ), answers["non-approver"]
    # The chart's RBAC lets jitgate act only as the users the chart maps.
    assert 'cannot impersonate resource "users"' in answers["not-impersonable"][1], answers
    assert answers["approve"] == (200, "Your approval of prod/slack-approve is recorded as bob.")
    assert answers["deny"] == (200, "Your denial of prod/slack-deny is recorded as carol.")
    # Each recorded decision shows in the message at once (the operator's outcome follows).
    assert answers["update"][0] == 2
    assert "Decisions so far: Approve bob (via slack)" in answers["update"][1]
    assert "Decisions so far: Deny carol (via slack)" in answers["update"][1]

    approved = c.wait_phase("prod", "slack-approve", "Approved")
    (approval,) = approved["status"]["approvals"]
    assert (approval["user"], approval["via"], approval["decision"]) == ("bob", "slack", "Approve")
    assert "sre" in approval["groups"]
    denied = c.wait_phase("prod", "slack-deny", "Denied")
    assert [(a["user"], a.get("via")) for a in denied["status"]["approvals"]] == [
        ("carol", "slack")
    ]
    assert c.get("accessrequest", "slack-carol", "prod")["status"]["approvals"] == []
    shown = c.jit("alice", "show", "slack-approve", "-n", "prod")
    assert "(via slack)" in shown.stdout, shown.stdout
    approvals = [r for r in c.records("operator", "--request", "slack-approve")
                 if r["type"] == "request.approval"]  # fmt: skip
    assert [(r["actor"]["user"], r["context"].get("via")) for r in approvals] == [("bob", "slack")]

    reader = open_log_reader(audit_url)
    try:
        records = [e.record for e in reader.chain("slack-test") if isinstance(e, Entry)]
    finally:
        reader.close()
    refused = [
        (r["request"], r["actor"]["user"], r["context"]["slackUser"])
        for r in records
        if r is not None and r["type"] == "slack.refused"
    ]
    assert refused == [
        ("slack-approve", "alice", "UALICE"),
        ("slack-carol", "alice", "UALICE"),
        ("slack-approve", "mallory", "UMALLORY"),
    ]
