"""The Slack app: interactive messages through a local stub of the Slack Web API, and signed
clicks on its HTTPS endpoint (bad signature, stale, replayed, unmapped user, view, approve).

The emulator has no admission webhook, so identity stamping and the approval rules applied to
a click are tested on the real API server tier (tests/e2e/test_slack.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from apiserver.harness import free_port
from jitgate.operator.config import SlackConfig
from support import slack

pytestmark = pytest.mark.usefixtures("emulator")

AR = "jitgate.dev/v1alpha1/accessrequests"


@pytest.fixture
async def stub() -> AsyncIterator[slack.SlackStub]:
    async with slack.slack_stub() as running:
        yield running


class App:
    def __init__(self, jit: Any, stub: slack.SlackStub, files: slack.AppFiles) -> None:
        self.jit, self.stub, self.files = jit, stub, files
        self.port = free_port()
        self.config = SlackConfig(
            bot_token_file=files.token,
            signing_secret_file=files.secret,
            channel=slack.CHANNEL,
            users_file=files.users,
            tls_cert=files.cert,
            tls_key=files.key,
            host="127.0.0.1",
            port=self.port,
            api_url=stub.api_url,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/slack/interactions"

    async def click(
        self,
        action: str,
        request: str,
        user: str,
        *,
        age: int = 0,
        secret: str = slack.SIGNING_SECRET,
    ) -> tuple[int, str]:
        timestamp = int(self.jit.clock.now().timestamp()) - age
        body = slack.payload(action, request, user, message_ts="1700000000.000001")
        raw, headers = slack.signed(body, timestamp, secret)
        return await slack.post(self.url, raw, headers, self.files.ca)


@pytest.fixture
def app(jit: Any, stub: slack.SlackStub, tmp_path: Any) -> App:
    return App(jit, stub, slack.app_files(tmp_path / "slack"))


def ephemerals(stub: slack.SlackStub) -> list[str]:
    return [call.args["text"] for call in stub.of("chat.postEphemeral")]


async def test_a_new_request_is_posted_with_buttons_and_its_outcome_replaces_them(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    jit.policy(pendingTimeout="10m")
    async with jit.running(slack=app.config):
        jit.request("fix-web-0")
        await stub.until(lambda calls: any(c.method == "chat.postMessage" for c in calls))
        posted = stub.of("chat.postMessage")[0]
        assert (posted.token, posted.args["channel"]) == (slack.BOT_TOKEN, slack.CHANNEL)
        buttons = posted.args["blocks"][-1]["elements"]
        assert [(b["action_id"], b["value"]) for b in buttons] == [
            ("jitgate.approve", "prod/fix-web-0"),
            ("jitgate.deny", "prod/fix-web-0"),
            ("jitgate.view", "prod/fix-web-0"),
        ]
        marker = "jitgate.dev/slack-message"
        await jit.until(lambda: marker in jit.get("fix-web-0")["metadata"].get("annotations", {}))
        assert jit.get("fix-web-0")["metadata"]["annotations"][marker] == (
            f"{slack.CHANNEL}/1700000000.000001"
        )
        jit.approve("fix-web-0", "bob")
        await stub.until(lambda calls: any(c.method == "chat.update" for c in calls))
    update = stub.of("chat.update")[0].args
    assert (update["channel"], update["ts"]) == (slack.CHANNEL, "1700000000.000001")
    assert "Approved" in update["text"]
    assert all(block["type"] != "actions" for block in update["blocks"])  # no buttons left
    assert "Approve bob" in str(update["blocks"])


async def test_an_expired_request_says_so_in_its_message(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    import datetime as dt

    jit.policy(pendingTimeout="10m")
    async with jit.running(slack=app.config):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        await stub.until(lambda calls: any(c.method == "chat.postMessage" for c in calls))
        jit.clock.advance(dt.timedelta(minutes=11))
        await stub.until(lambda calls: any(c.method == "chat.update" for c in calls))
    assert "Expired" in stub.of("chat.update")[0].args["text"]


async def test_unsigned_wrongly_signed_stale_and_replayed_clicks_are_refused(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    jit.policy()
    async with jit.running(slack=app.config):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        raw, _ = slack.signed(slack.payload("jitgate.view", "prod/fix-web-0", "UBOB"), 0)
        assert (await slack.post(app.url, raw, {}, app.files.ca))[0] == 401
        forged = await app.click("jitgate.approve", "prod/fix-web-0", "UBOB", secret="guess")
        assert forged == (401, "refused: the signature does not match the signing secret\n")
        stale = await app.click("jitgate.approve", "prod/fix-web-0", "UBOB", age=301)
        assert stale[0] == 401 and "more than 5 minutes" in stale[1]
        timestamp = int(jit.clock.now().timestamp())
        raw, headers = slack.signed(
            slack.payload("jitgate.view", "prod/fix-web-0", "UBOB"), timestamp
        )
        assert (await slack.post(app.url, raw, headers, app.files.ca))[0] == 200
        replayed = await slack.post(app.url, raw, headers, app.files.ca)
        assert replayed == (401, "refused: this request was already handled (replayed)\n")
    assert jit.get("fix-web-0")["status"]["approvals"] == []
    assert len(ephemerals(stub)) == 1  # only the one genuine click was answered


async def test_an_unmapped_clicker_is_refused_told_why_and_recorded(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    jit.policy()
    async with jit.running(slack=app.config):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        assert (await app.click("jitgate.approve", "prod/fix-web-0", "UMALLORY"))[0] == 200
        await stub.until(lambda calls: any(c.method == "chat.postEphemeral" for c in calls))
    (told,) = stub.of("chat.postEphemeral")
    assert told.args["user"] == "UMALLORY"
    assert "not mapped to a Kubernetes user" in told.args["text"]
    assert jit.get("fix-web-0")["status"]["approvals"] == []
    (refused,) = [r for r in jit.records() if r["type"] == "slack.refused"]
    assert (refused["request"], refused["context"]["slackUser"]) == ("fix-web-0", "UMALLORY")
    assert "not mapped" in refused["reason"]


async def test_view_shows_the_request_to_the_clicker_only(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    jit.policy()
    async with jit.running(slack=app.config):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        assert (await app.click("jitgate.view", "prod/fix-web-0", "UBOB"))[0] == 200
        await stub.until(lambda calls: any(c.method == "chat.postEphemeral" for c in calls))
    (shown,) = stub.of("chat.postEphemeral")
    assert shown.args["user"] == "UBOB"
    assert "*prod/fix-web-0*: Pending" in shown.args["text"]
    assert "Reason: INC-1234: worker stuck" in shown.args["text"]


async def test_a_break_glass_activation_names_and_messages_every_mapped_approver(
    jit: Any, app: App, stub: slack.SlackStub
) -> None:
    jit.policy(breakGlass={"users": ["alice"]})
    async with jit.running(slack=app.config):
        jit.request("sev1", breakGlass=True)
        await jit.until_phase("sev1", "Approved")
        await stub.until(
            lambda calls: len([c for c in calls if c.method == "chat.postMessage"]) >= 3
        )
    posts = stub.of("chat.postMessage")
    alert = next(
        p for p in posts if p.args["channel"] == slack.CHANNEL and "BREAK-GLASS" in p.args["text"]
    )
    assert "<@UBOB> <@UCAROL>" in str(alert.args["blocks"])  # the sre group's mapped members
    assert sorted(p.args["channel"] for p in posts if "BREAK-GLASS" in p.args["text"]) == [
        slack.CHANNEL,
        "UBOB",
        "UCAROL",
    ]
