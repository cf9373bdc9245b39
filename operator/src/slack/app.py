"""The Slack app: interactive notifications out, signed button clicks in.

Out: each notification is posted through the Slack Web API (`slack_sdk`'s AsyncWebClient) in the
background. A new request gets a message with Approve / Deny / View buttons, and its
`channel/ts` is kept on the request (annotation `jitgate.dev/slack-message`) so that the outcome
(approved by X, denied, expired) replaces it later, even after an operator restart. A
break-glass activation is posted to the channel naming every mapped approver of the governing
policies, and sent to each of them directly.

In: `POST {path}` on its own HTTPS port. A click is accepted only when Slack signed it
(`signing`), and acted on only for a Slack user the admin's mapping names (`users`). The
decision is then appended to the request's `status.approvals` AS THAT KUBERNETES USER
(impersonation, with the userInfo extra `jitgate.dev/via: slack`): the webhook stamps the real
approver, their groups, the spec digest and `via: slack`, and applies every approval rule
(eligibility, self-approval, one decision each) exactly as for `kubectl jit approve`. A click
that is refused (an unmapped user, a webhook refusal, RBAC) gets an ephemeral reply saying why,
and a `slack.refused` audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs

from aiohttp import web
from jitgate.operator.config import SlackConfig
from jitgate.operator.kube import ApiError, Impersonation, KubeApi, object_path
from jitgate.operator.notify import SLACK_MESSAGE_ANNOTATION, Notification, describe
from jitgate.operator.slack import messages
from jitgate.operator.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier
from jitgate.operator.slack.users import SlackUsers
from jitgate.operator.workflow import AuditLog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from jitgate.core import wire
from jitgate.core.admission.writes import VIA_EXTRA
from jitgate.core.api import AccessRequest, Decision, Subjects
from jitgate.core.clock import Clock
from jitgate.core.events import SLACK_REFUSED, Actor, AuditEvent

logger = logging.getLogger("jitgate.operator.slack")

REQUESTS: Final = "accessrequests"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a Kubernetes object name
_MAX_BODY = 64 * 1024  # an interaction payload is a few KiB
_DECISIONS: Final[Mapping[str, Decision]] = {
    messages.APPROVE: "Approve",
    messages.DENY: "Deny",
}


def _secret(path: Any) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read().strip()


class SlackApp:
    """Start it inside the running loop (`start`), close it at the end (`close`)."""

    def __init__(
        self,
        config: SlackConfig,
        *,
        clock: Clock,
        kube: KubeApi,
        audit: AuditLog,
    ) -> None:
        self._config = config
        self._clock = clock
        self._kube = kube
        self._audit = audit
        self._users = SlackUsers(config.users_file)
        self._verifier = Verifier(_secret(config.signing_secret_file).encode(), clock)
        self._client = AsyncWebClient(
            token=_secret(config.bot_token_file),
            base_url=config.api_url,
            timeout=int(config.timeout),
        )
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=config.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        # request → "channel/ts" of its message, besides the annotation (which may lag).
        self._posted: dict[str, str] = {}
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="jitgate-slack")
        if self._runner is None:
            app = web.Application(client_max_size=_MAX_BODY)
            app.router.add_post(self._config.path, self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._config.tls_cert, self._config.tls_key)
            site = web.TCPSite(runner, self._config.host, self._config.port, ssl_context=context)
            await site.start()
            self._runner = runner

    async def drain(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), seconds)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ notifications out

    def send(self, note: Notification) -> None:
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("Slack queue is full; dropped %s/%s", note.kind, note.request)

    async def _work(self) -> None:
        while True:
            note = await self._queue.get()
            try:
                await self._deliver(note)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a notification never stops the next one
                self.failed += 1
                logger.warning("Slack %s/%s failed: %s", note.kind, note.request, error)
            finally:
                self._queue.task_done()

    async def _deliver(self, note: Notification) -> None:
        key = messages.reference(note)
        if note.kind == "created":
            text, blocks = messages.request_message(note)
            reply = await self._client.chat_postMessage(
                channel=self._config.channel, text=text, blocks=blocks
            )
            posted = f"{reply['channel']}/{reply['ts']}"
            self._posted[key] = posted
            await self._remember(note, posted)
            return
        if note.kind == "approved" and note.break_glass:
            await self._alert(note)
            return
        text, blocks = messages.outcome_message(note)
        earlier = self._posted.pop(key, "") or note.slack_message or ""
        if "/" in earlier:
            channel, ts = earlier.split("/", 1)
            await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        else:
            await self._client.chat_postMessage(
                channel=self._config.channel, text=text, blocks=blocks
            )

    async def _alert(self, note: Notification) -> None:
        """Break-glass: the channel hears it naming every mapped approver, and each of them
        gets it directly."""
        mentions = self._users.slack_ids_of(
            Subjects(users=list(note.alert_users), groups=list(note.alert_groups))
        )
        text, blocks = messages.break_glass_alert(note, mentions)
        await self._client.chat_postMessage(channel=self._config.channel, text=text, blocks=blocks)
        for slack_id in mentions:
            await self._client.chat_postMessage(channel=slack_id, text=text, blocks=blocks)

    async def _remember(self, note: Notification, posted: str) -> None:
        patch = {"metadata": {"annotations": {SLACK_MESSAGE_ANNOTATION: posted}}}
        with contextlib.suppress(ApiError):  # gone already: nothing left to update
            await self._kube.call(
                "PATCH",
                object_path(REQUESTS, note.namespace, note.request),
                patch,
                content_type="application/merge-patch+json",
            )

    # ------------------------------------------------------------------ clicks in

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        why = self._verifier.refusal(
            request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body
        )
        if why is not None:
            logger.warning("Refused a Slack interaction from %s: %s", request.remote, why)
            return web.Response(status=401, text=f"refused: {why}\n")
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            click = _Click.of(payload)
        except (KeyError, IndexError, ValueError, TypeError, UnicodeDecodeError):
            return web.Response(status=400, text="not a jitgate button click\n")
        await self._act(click)
        return web.Response(status=200)

    async def _act(self, click: _Click) -> None:
        who = self._users.identity(click.slack_user)
        if who is None:
            await self._refuse(
                click,
                None,
                f"your Slack account ({click.slack_user}) is not mapped to a Kubernetes user, "
                "so jitgate cannot act as you; ask your jitgate admin to add it to the chart's "
                "slack.users",
            )
            return
        raw = await self._kube.get(REQUESTS, click.namespace, click.name)
        found = wire.read(AccessRequest, raw) if raw is not None else None
        if not isinstance(found, AccessRequest):
            await self._refuse(click, who, f"there is no readable request {click.reference}")
            return
        if click.action == messages.VIEW:
            await self._ephemeral(click, messages.describe_request(found))
            return
        decision = _DECISIONS[click.action]
        entry = {"decision": decision, "comment": f"{decision.lower()}d in Slack"}
        patch = [{"op": "add", "path": "/status/approvals/-", "value": entry}]
        try:
            await self._kube.call(
                "PATCH",
                object_path(REQUESTS, click.namespace, click.name, "status"),
                patch,
                content_type="application/json-patch+json",
                impersonate=Impersonation(who.user, who.groups, ((VIA_EXTRA, "slack"),)),
            )
        except ApiError as error:
            await self._refuse(click, who, f"not recorded: {error}")
            return
        verb = "approval" if decision == "Approve" else "denial"
        await self._ephemeral(click, f"Your {verb} of {click.reference} is recorded as {who.user}.")
        await self._show_progress(click, found, who.user, decision)

    async def _show_progress(
        self, click: _Click, request: AccessRequest, user: str, decision: Decision
    ) -> None:
        """The message shows who decided at once; the operator's outcome replaces it."""
        if not click.channel or not click.message_ts:
            return
        earlier = [
            f"{a.decision} {a.user}" + (f" (via {a.via})" if a.via else "")
            for a in request.status.approvals
        ]
        note = describe(request, "created", request.status, "")
        text, blocks = messages.request_message(note, [*earlier, f"{decision} {user} (via slack)"])
        with contextlib.suppress(SlackApiError):
            await self._client.chat_update(
                channel=click.channel, ts=click.message_ts, text=text, blocks=blocks
            )

    async def _refuse(self, click: _Click, who: Any, why: str) -> None:
        logger.info(
            "Refused Slack %s of %s by %s: %s", click.action, click.reference, click.slack_user, why
        )
        event = AuditEvent(
            type=SLACK_REFUSED,
            time=self._clock.now(),
            actor=Actor(user=who.user, groups=who.groups) if who else None,
            namespace=click.namespace,
            request=click.name,
            reason=why,
            context={
                "slackUser": click.slack_user,
                "slackTeam": click.team,
                "action": click.action,
            },
        )
        await self._audit.append(event)
        await self._ephemeral(click, f"jitgate refused your click: {why}")

    async def _ephemeral(self, click: _Click, text: str) -> None:
        if not click.channel:
            return
        with contextlib.suppress(SlackApiError):
            await self._client.chat_postEphemeral(
                channel=click.channel, user=click.slack_user, text=text
            )


class _Click:
    """One button click, as far as a signed `block_actions` payload says."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        if payload.get("type") != "block_actions":
            raise ValueError("not a block_actions payload")
        action = payload["actions"][0]
        if action["action_id"] not in messages.ACTIONS:
            raise ValueError(f"unknown action {action['action_id']}")
        namespace, name = str(action["value"]).split("/", 1)
        if not (_NAME.fullmatch(namespace) and _NAME.fullmatch(name)):
            raise ValueError("the button names no request")
        self.action: str = action["action_id"]
        self.namespace, self.name = namespace, name
        self.slack_user = str(payload["user"]["id"])
        self.team = str((payload.get("team") or {}).get("id") or "")
        self.channel = str((payload.get("channel") or {}).get("id") or "")
        self.message_ts = str((payload.get("container") or {}).get("message_ts") or "")

    @classmethod
    def of(cls, payload: Any) -> _Click:
        if not isinstance(payload, Mapping):
            raise TypeError("the payload is not an object")
        return cls(payload)

    @property
    def reference(self) -> str:
        return f"{self.namespace}/{self.name}"
