"""Overload: a bounded number of reviews are decided at once; the rest wait briefly, then are
denied at once with a reason that says so. Never a 5xx, never a review left unanswered, and
never one left waiting past what the API server waits for it (the `?timeout=` on the URL).

The decisions are held up by a slow API server: the live read of Grants before a denial
blocks until the test lets it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from jitgate.webhook.app import create_app
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.livegrants import LiveGrants
from jitgate.webhook.routers.admission import OVERLOADED, api_server_timeout
from jitgate.webhook.server import http_options
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.tls import ReloadingTLS
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


@contextlib.asynccontextmanager
async def slow_webhook(
    slow: SlowApiServer, cache: ClusterCache, directory: Path, queue_wait: float
) -> AsyncIterator[Any]:
    """The webhook's app, SLOTS reviews decided at once, its live reads answered by `slow`."""
    clock = ManualClock(NOW)
    async with open_audit_writer(f"file://{directory}/audit", writer_id="o", clock=clock) as audit:
        service = AdmissionService(
            cache=cache,
            audit=audit,
            clock=clock,
            live_grants=LiveGrants(slow.read, timeout=10.0, rate=1000.0),
        )
        yield create_app(service, max_in_flight=SLOTS, queue_wait=queue_wait)


@contextlib.asynccontextmanager
async def over_https(app: Any, pki: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` served as `jitgate webhook` serves it (its HTTP protocol, TLS)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    tls = ReloadingTLS(pki.cert_file, pki.key_file)
    config = uvicorn.Config(
        app,
        ssl_context_factory=lambda _config, _default: tls.context,
        log_level="warning",
        lifespan="off",
        **http_options(client_ca=False),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        url = f"https://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, verify=pki.client_context(), timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def client(
    slow: SlowApiServer, lagging_cache: ClusterCache, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with slow_webhook(slow, lagging_cache, tmp_path, queue_wait=0.05) as app:
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
    for response in shed:
        _assert_shed(response)

    slow.released.set()
    for response in await asyncio.gather(*held):
        assert response.status_code == 200
        answer = response.json()["response"]
        # Decided in full once the API server answered: the ordinary denial, not shed.
        assert answer["allowed"] is False and answer["status"]["reason"] == "Forbidden"
        assert answer["status"]["message"].startswith("jitgate denied exec into pod web-0")


@pytest.mark.parametrize("served", ["asgi", "https"])
async def test_a_review_waits_for_a_slot_at_most_half_the_api_servers_timeout(
    served: str,
    slow: SlowApiServer,
    lagging_cache: ClusterCache,
    tmp_path: Path,
    pki: Any,
    reviews: Any,
) -> None:
    # The queue wait alone would keep it a minute: far past the 200 ms the API server waits.
    async with contextlib.AsyncExitStack() as stack:
        app = await stack.enter_async_context(
            slow_webhook(slow, lagging_cache, tmp_path, queue_wait=60.0)
        )
        if served == "asgi":
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://webhook")
            await stack.enter_async_context(client)
        else:
            client = await stack.enter_async_context(over_https(app, pki))

        async def review(i: int, url: str = "/validate") -> httpx.Response:
            return await client.post(url, json=reviews.exec(command=["ls", str(i)]))

        held = [asyncio.create_task(review(i)) for i in range(SLOTS)]
        assert await asyncio.to_thread(slow.asked.wait, 10)
        # As the API server calls a webhook whose timeoutSeconds is short.
        response = await asyncio.wait_for(review(SLOTS, "/validate?timeout=200ms"), 30)
        assert not slow.released.is_set()  # every slot still held: it was shed, not decided
        _assert_shed(response)

        slow.released.set()
        for held_response in await asyncio.gather(*held):
            assert held_response.json()["response"]["status"]["reason"] == "Forbidden"


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        (b"timeout=10s", 10.0),
        (b"timeout=1m30s", 90.0),
        (b"timeout=1.5s", 1.5),
        (b"timeout=500ms", 0.5),
        (b"dryRun=All&timeout=5s", 5.0),
        (b"timeout=5", None),
        (b"timeout=5s;rm", None),
        (b"timeout=", None),
        (b"", None),
    ],
)
def test_the_api_servers_timeout_is_read_as_go_writes_it(
    query: bytes, seconds: float | None
) -> None:
    assert api_server_timeout(query) == seconds


def _assert_shed(response: httpx.Response) -> None:
    """Denied at once for want of a slot, as the API server reads it: a 200, not a 5xx."""
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"] == OVERLOADED
    assert answer["status"]["reason"] == "TooManyRequests"
