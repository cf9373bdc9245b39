"""Prometheus metrics and kopf's liveness endpoint, scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fetch(url: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(headers={"Connection": "close"}) as session,
        session.get(url) as reply,
    ):
        return reply.status, await reply.text()


async def settled(url: str, expected: dict[str, float]) -> str:
    """The metrics once they show `expected`: kopf's event handlers update them a moment after
    the write a test waited for, so read until they agree (bounded)."""
    text = ""
    for _ in range(100):
        status, text = await fetch(url)
        assert status == 200
        if all(_value(text, name) == value for name, value in expected.items()):
            return text
        await asyncio.sleep(0.05)
    return text


def _value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in the metrics")


async def test_metrics_and_liveness_are_served(jit) -> None:
    jit.policy(maxDuration="1h")
    metrics, health = free_port(), free_port()
    async with jit.running(
        metrics_port=metrics,
        metrics_host="127.0.0.1",
        liveness=f"http://127.0.0.1:{health}/healthz",
    ):
        jit.request("approved")
        jit.request("pending")
        jit.request("denied", duration="2h")
        await jit.until_phase("denied", "Denied")
        await jit.until_phase("pending", "Pending")
        await jit.until_phase("approved", "Pending")
        jit.clock.advance(dt.timedelta(seconds=90))
        jit.approve("approved", "bob")
        await jit.until_phase("approved", "Approved")
        url = f"http://127.0.0.1:{metrics}/metrics"
        text = await settled(
            url,
            {
                'jitgate_operator_requests{phase="Approved"}': 1,
                "jitgate_operator_grants_active": 1,
            },
        )
        assert sample(text, 'jitgate_operator_requests{phase="Pending"}') == 1
        assert sample(text, 'jitgate_operator_requests{phase="Approved"}') == 1
        assert sample(text, 'jitgate_operator_requests{phase="Denied"}') == 1
        assert sample(text, "jitgate_operator_grants_active") == 1
        assert sample(text, "jitgate_operator_time_to_approval_seconds_count") == 1
        assert sample(text, "jitgate_operator_time_to_approval_seconds_sum") == 90
        jit.clock.advance(dt.timedelta(minutes=16))
        await jit.until_phase("approved", "Expired")
        text = await settled(url, {"jitgate_operator_expiry_lag_seconds_count": 1})
        assert sample(text, "jitgate_operator_expiry_lag_seconds_count") == 1
        assert sample(text, 'jitgate_operator_transitions_total{phase="Expired"}') == 1
        status, _ = await fetch(f"http://127.0.0.1:{health}/healthz")
        assert status == 200
