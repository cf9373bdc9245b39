"""Overload: a bounded number of reviews are decided at once; the rest wait briefly, then are
denied at once with a reason that says so. Never a 5xx, never a review left unanswered.

The decisions are held up by a slow API server: the live read of Grants before a denial
blocks until the test lets it go.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from jitgate.webhook.app import create_app
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.livegrants import LiveGrants
from jitgate.webhook.routers.admission import OVERLOADED
from jitgate.webhook.service import AdmissionService
from support.clocks import NOW

from jitgate.audit.connect import open_audit_writer
from jitgate.core.clock import ManualClock

SLOTS = 4
BURST = 3 * 8 * SLOTS  # bounded: three times what the slots and their queue can take


class SlowApiServer:
    """Answers a Grant list only once released (and lists no Grants)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.asked = threading.Event()

    def read(
        self, namespace: str, user: str, limit: int, timeout: float
    ) -> Sequence[Mapping[str, Any]]:
        self.asked.set()
        self.released.wait(10)
        return []


@pytest.fixture
async def slow() -> AsyncIterator[SlowApiServer]:
    server = SlowApiServer()
    yield server
    server.released.set()


@pytest.fixture
async def client(
    slow: SlowApiServer, lagging_cache: ClusterCache, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    clock = ManualClock(NOW)
    async with open_audit_writer(f"file://{tmp_path}/audit", writer_id="o", clock=clock) as audit:
        service = AdmissionService(
            cache=lagging_cache,
            audit=audit,
            clock=clock,
            live_grants=LiveGrants(slow.read, timeout=10.0, rate=1000.0),
        )
        app = create_app(service, max_in_flight=SLOTS, queue_wait=0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as http:
            yield http


async def test_a_burst_beyond_the_slots_is_denied_fast_never_5xx(
    client: httpx.AsyncClient, slow: SlowApiServer, reviews: Any
) -> None:
    async def review(i: int) -> httpx.Response:
        return await client.post("/validate", json=reviews.exec(command=["ls", str(i)]))

    held = [asyncio.create_task(review(i)) for i in range(SLOTS)]
    assert await asyncio.to_thread(slow.asked.wait, 10)
    shed = await asyncio.gather(*(review(i) for i in range(SLOTS, BURST)))
    assert {response.status_code for response in shed} == {200}
    for response in shed:
        answer = response.json()["response"]
        assert answer["allowed"] is False
        assert answer["status"]["message"] == OVERLOADED
        assert answer["status"]["reason"] == "TooManyRequests"

    slow.released.set()
    for response in await asyncio.gather(*held):
        assert response.status_code == 200
        answer = response.json()["response"]
        # Decided in full once the API server answered: the ordinary denial, not shed.
        assert answer["allowed"] is False and answer["status"]["reason"] == "Forbidden"
        assert answer["status"]["message"].startswith("jitgate denied exec into pod web-0")
