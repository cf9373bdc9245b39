"""Notifications reach a local HTTP endpoint, in both formats, retried after a failure."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from jitgate.operator.config import NotifyConfig


@dataclass
class Endpoint:
    url: str = ""
    fail_first: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return web.Response(status=500, text="try again")
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(text="ok")

    async def received(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.bodies


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    hook = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


async def test_slack_notifications_are_retried_after_a_server_error(jit, endpoint) -> None:
    endpoint.fail_first = 1
    jit.policy(pendingTimeout="10m")
    notify = NotifyConfig(url=endpoint.url, format="slack", backoff=0.05, timeout=2)
    async with jit.running(notify=notify):
        jit.request("fix-web-0")
        await endpoint.received(1)
        jit.approve("fix-web-0", "bob")
        await endpoint.received(2)
        jit.request("stale")
        await endpoint.received(3)
        jit.clock.advance(dt.timedelta(minutes=10))
        await endpoint.received(4)
    assert endpoint.attempts == 5  # the first attempt got a 500 and was retried
    texts = [body["text"] for body in endpoint.bodies]
    assert set(endpoint.bodies[0]) == {"text"}
    assert "`prod/fix-web-0` by alice needs approval" in texts[0]
    assert "kubectl jit approve fix-web-0 -n prod" in texts[0]
    assert "`prod/fix-web-0` by alice was approved" in texts[1]
    assert "Run: `kubectl exec -it -n prod web-0 -- sh`" in texts[1]
    assert "`prod/stale` by alice expired" in texts[3]


async def test_an_approval_says_what_to_run_through_the_gateway_where_sessions_are_recorded(
    jit, endpoint
) -> None:
    jit.policy(sessions={"recording": "Required"})
    notify = NotifyConfig(url=endpoint.url, format="generic", backoff=0.05)
    async with jit.running(notify=notify):
        jit.request("fix-web-0")
        await endpoint.received(1)
        jit.approve("fix-web-0", "bob")
        created, approved = await endpoint.received(2)
    assert "run" not in created
    assert approved["run"] == ["kubectl jit exec -it -n prod web-0 -- sh"]


async def test_generic_notifications_carry_the_facts(jit, endpoint) -> None:
    jit.policy()
    notify = NotifyConfig(url=endpoint.url, format="generic", backoff=0.05)
    async with jit.running(notify=notify):
        jit.request("fix-web-0")
        jit.request("denied", duration="9h")
        bodies = await endpoint.received(2)
    by_request = {body["request"]: body for body in bodies}
    assert by_request["fix-web-0"]["event"] == "request.created"
    assert by_request["fix-web-0"]["phase"] == "Pending"
    assert by_request["fix-web-0"]["actions"] == ["exec pods web-0"]
    assert by_request["denied"]["event"] == "request.denied"
    assert "at most 1h (AccessPolicy production)" in by_request["denied"]["message"]
    assert by_request["denied"]["requester"] == "alice"


async def test_an_unreachable_endpoint_never_blocks_the_lifecycle(jit) -> None:
    jit.policy()
    notify = NotifyConfig(url="http://127.0.0.1:9/hook", backoff=0.05, attempts=3, timeout=0.5)
    async with jit.running(notify=notify):
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
    assert [grant["spec"]["user"] for grant in jit.grants()] == ["alice"]


async def test_a_break_glass_activation_names_every_approver_on_the_webhook(jit, endpoint) -> None:
    jit.policy(approvers={"users": ["dave"], "groups": ["sre"]}, breakGlass={"users": ["alice"]})
    jit.policy("team", approvers={"groups": ["dba"]}, breakGlass={"users": ["alice"]})
    generic = NotifyConfig(url=endpoint.url, format="generic", backoff=0.05)
    async with jit.running(notify=generic):
        jit.request("sev1", breakGlass=True)
        (body,) = await endpoint.received(1)
    assert (body["event"], body["breakGlass"]) == ("request.approved", True)
    assert body["alert"] == {"users": ["dave"], "groups": ["dba", "sre"]}
    endpoint.bodies.clear()
    text = NotifyConfig(url=endpoint.url, format="slack", backoff=0.05)
    async with jit.running(notify=text):
        jit.request("sev2", breakGlass=True)
        (body,) = await endpoint.received(1)
    assert "BREAK-GLASS" in body["text"]
    assert "Approvers alerted: users dave; groups dba, sre" in body["text"]
