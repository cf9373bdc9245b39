"""A local stand-in for Slack: the Web API methods jitgate calls, served on 127.0.0.1, and
button clicks signed as Slack signs them. No traffic leaves the machine.

    async with slack_stub() as stub:       # stub.api_url is slack_sdk's base_url
        ...
        await stub.until(lambda calls: any(c.method == "chat.update" for c in calls))
    raw, headers = signed(payload("jitgate.approve", "prod/fix", "UBOB"), timestamp)
    status, text = await post(endpoint_url, raw, headers, files.ca)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
from aiohttp import web

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a test value, as in Slack's docs
BOT_TOKEN = "xoxb-test-token"
CHANNEL = "CJITGATE"
USERS = {
    "UBOB": {"user": "bob", "groups": ["sre"]},
    "UCAROL": {"user": "carol", "groups": ["sre"]},
    "UALICE": {"user": "alice", "groups": ["developers"]},
    "UERIN": {"user": "erin", "groups": ["security"]},
}


@dataclass(frozen=True)
class Call:
    method: str  # chat.postMessage, chat.update, chat.postEphemeral
    args: dict[str, Any]
    token: str


@dataclass
class SlackStub:
    api_url: str = ""
    calls: list[Call] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _ts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json":
            args = json.loads(raw or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append(Call(method, args, token))
        self.changed.set()
        if token != BOT_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        self._ts += 1
        channel = args.get("channel", "")
        return web.json_response(
            {"ok": True, "channel": channel, "ts": args.get("ts") or f"1700000000.{self._ts:06d}"}
        )

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def until(self, condition: Callable[[list[Call]], bool]) -> None:
        """Wait (at most 15 s) until the calls so far meet `condition`."""
        async with asyncio.timeout(15):
            while not condition(self.calls):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def slack_stub() -> AsyncIterator[SlackStub]:
    stub = SlackStub()
    app = web.Application()
    app.router.add_post("/api/{method}", stub.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub.api_url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/"
    try:
        yield stub
    finally:
        await runner.cleanup()


def payload(action: str, request: str, user: str, message_ts: str = "") -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for a click on one of jitgate's buttons."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "TJIT"},
        "team": {"id": "TJIT", "domain": "jitgate"},
        "channel": {"id": CHANNEL, "name": "access"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL},
        "actions": [
            {"action_id": action, "block_id": "jitgate.decide", "value": request, "type": "button"}
        ],
    }


def signed(
    body: dict[str, Any], timestamp: int, secret: str = SIGNING_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of an interaction, signed with `secret` at `timestamp`."""
    raw = urlencode({"payload": json.dumps(body)}).encode()
    base = f"v0:{timestamp}:".encode() + raw
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return raw, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
    }


async def post(
    url: str, raw: bytes, headers: dict[str, str], context: ssl.SSLContext
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers, ssl=context) as reply,
    ):
        return reply.status, await reply.text()


@dataclass(frozen=True)
class AppFiles:
    """The files the Slack app reads, as the chart mounts them, and a CA trusting its port."""

    token: Path
    secret: Path
    users: Path
    cert: Path
    key: Path
    ca: ssl.SSLContext

    def flags(self, api_url: str, port: int) -> list[str]:
        """`jitgate operator` flags for the Slack app."""
        return [
            "--slack-channel", CHANNEL, "--slack-bot-token-file", str(self.token),
            "--slack-signing-secret-file", str(self.secret), "--slack-users", str(self.users),
            "--slack-tls-cert", str(self.cert), "--slack-tls-key", str(self.key),
            "--slack-host", "127.0.0.1", "--slack-port", str(port), "--slack-api-url", api_url,
        ]  # fmt: skip


def app_files(directory: Path) -> AppFiles:
    from jitgate.devtools.devcerts import DevCA

    directory.mkdir(parents=True, exist_ok=True)
    (token := directory / "bot-token").write_text(BOT_TOKEN + "\n")
    (secret := directory / "signing-secret").write_text(SIGNING_SECRET + "\n")
    (users := directory / "users.yaml").write_text(json.dumps({"users": USERS}))
    ca = DevCA(directory / "ca", "Slack endpoint test CA")
    cert, key = ca.issue("slack-endpoint")
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    return AppFiles(token, secret, users, cert, key, context)
