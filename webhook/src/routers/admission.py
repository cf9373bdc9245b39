"""`POST /validate` and `POST /mutate`: AdmissionReview in, AdmissionReview out, straight on ASGI.

The API server waits for every answer, so the two admission paths skip FastAPI altogether:
its middleware stack and routing cost about as much as the decision (profiled: a fifth of
the event loop's time per review). `admission_front` answers them and hands every other
request (health, metrics, unknown paths) to the FastAPI app. The HTTP protocol
(`jitgate.webhook.http1`) skips ASGI too: it reads a review whole and asks
`AdmissionFront.answer`, the same answer the ASGI path gives.

Bounded concurrency: at most `max_in_flight` reviews are decided at once; a review that finds
no free slot within `queue_wait` seconds is denied at once with a reason that says so
(`OVERLOADED`), never left to time out and never answered with a 5xx. It waits half the time
the API server waits for the answer at most, when that is shorter: the API server puts its
webhook timeout on the URL (`?timeout=5s`), and a chart may set 1 s, less than `queue_wait`.
Memory stays bounded because waiting reviews hold nothing but their parsed body.

With `trust_traces` (`--apiserver-traces`), the trace id in a review's `traceparent` header
tells the service which user request the review belongs to (`jitgate.webhook.traces`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from jitgate.webhook.callers import caller_of
from jitgate.webhook.http1 import content_length
from jitgate.webhook.review import (
    MAX_BODY_BYTES,
    AdmissionRequest,
    Answer,
    ReviewError,
    deny,
    parse_review,
    render,
)
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.traces import trace_in
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

UNDECIDED: Final = "jitgate could not decide this request because of an internal error"
OVERLOADED: Final = (
    "jitgate is overloaded and could not decide this request in time; try again shortly"
)
DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_QUEUE_WAIT: Final = 2.0  # seconds; well inside the API server's 10 s webhook timeout

# A Go duration as the API server writes its timeout (`5s`, `1m30s`, `500ms`).
_DURATION: Final = re.compile(rb"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_SECONDS: Final = {b"ns": 1e-9, b"us": 1e-6, b"ms": 1e-3, b"s": 1.0, b"m": 60.0, b"h": 3600.0}

_CONTENT_TYPE: Final = (b"content-type", b"application/json")
_TOO_LARGE: Final = f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB."

Headers = Sequence[tuple[bytes, bytes]]
Decider = Callable[
    [AdmissionService], Callable[[AdmissionRequest, str, str | None], Awaitable[Answer]]
]
_ENDPOINTS: Final[dict[str, Decider]] = {
    "/validate": lambda service: service.validate,
    "/mutate": lambda service: lambda review, _caller, _trace: service.mutate(review),
}


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send(send: Send, status: int, body: bytes) -> None:
    # A Content-Length, not chunked encoding: one write, and what every client expects.
    headers = [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The body, refused as soon as it exceeds the limit (declared or streamed)."""
    declared = content_length(scope["headers"])
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def api_server_timeout(query: bytes) -> float | None:
    """How long the API server waits for this answer, in seconds: the `timeout` it puts on
    the webhook's URL query; None when the query has none or not a Go duration."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name != b"timeout" or not value:
            continue
        parts = _DURATION.findall(value)
        if b"".join(number + unit for number, unit in parts) != value:
            return None
        return sum(float(number) * _SECONDS[unit] for number, unit in parts)
    return None


class AdmissionFront:
    """The ASGI app: the admission paths answered here, bounded; everything else passed to
    `app`. `answer` is the same answer without ASGI, which the HTTP protocol
    (`jitgate.webhook.http1`) gives a review it reads whole itself."""

    paths: Final = frozenset(_ENDPOINTS)
    max_body: Final = MAX_BODY_BYTES

    def __init__(
        self,
        service: AdmissionService,
        app: ASGIApp,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        queue_wait: float = DEFAULT_QUEUE_WAIT,
        trust_traces: bool = False,
    ) -> None:
        self._service = service
        self._trust_traces = trust_traces
        self._app = app
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue_wait = queue_wait
        self._metrics = service.metrics
        # Resolved once: a labelled child's lookup takes a lock and a dictionary per review.
        self._observe = {
            path: self._metrics.latency.labels(path[1:]).observe for path in _ENDPOINTS
        }

    def _queue_wait_for(self, query: bytes) -> float:
        """How long a review sent with `query` may wait for a slot: `queue_wait`, or half the
        API server's timeout when that is shorter (the other half left for the decision and
        the way back), so it is denied fast rather than left to time out there."""
        timeout = api_server_timeout(query) if query else None
        return self._queue_wait if timeout is None else min(self._queue_wait, timeout / 2)

    async def _decide(
        self, path: str, review: AdmissionRequest, caller: str, query: bytes, trace: str | None
    ) -> Answer:
        slots = self._slots
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), self._queue_wait_for(query))
            except TimeoutError:
                self._metrics.shed.labels(path[1:]).inc()
                return deny(OVERLOADED, "TooManyRequests")
        else:
            await slots.acquire()
        try:
            return await _ENDPOINTS[path](self._service)(review, caller, trace)
        except Exception:
            # Never a 500 and never an allow: the API server applies its failurePolicy to
            # errors, and a denial states plainly what happened.
            logger.exception("Deciding AdmissionReview %s failed.", review.uid)
            return deny(UNDECIDED, "InternalError")
        finally:
            slots.release()

    async def answer(
        self, path: str, body: bytes, caller: str, query: bytes = b"", headers: Headers = ()
    ) -> tuple[int, bytes]:
        """The status and JSON body answering a POST of `body` to `path` (one of `paths`)
        by `caller` (`callers.caller_of`), with the URL's `query` (its `timeout`) and the
        request's `headers` (its `traceparent`, when trusted)."""
        started = time.perf_counter()
        try:
            review = parse_review(body)
        except ReviewError as error:
            self._metrics.malformed.inc()
            return 400, _error(str(error))
        trace = trace_in(headers) if self._trust_traces else None
        answer = await self._decide(path, review, caller, query, trace)
        rendered = render(review.uid, answer)
        self._observe[path](time.perf_counter() - started)
        return 200, rendered

    def too_large(self) -> tuple[int, bytes]:
        """The answer to a body over `max_body` (declared or streamed), refused unread."""
        self._metrics.malformed.inc()
        return 400, _error(_TOO_LARGE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in _ENDPOINTS:
            await self._app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _send(send, 405, _error("Method Not Allowed."))
            return
        try:
            body = await _read_body(scope, receive)
        except _BodyTooLarge:
            await _send(send, *self.too_large())
            return
        except _Disconnected:
            return
        query = scope.get("query_string", b"")
        answer = await self.answer(path, body, caller_of(scope), query, scope["headers"])
        await _send(send, *answer)


def admission_front(
    service: AdmissionService,
    app: ASGIApp,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    queue_wait: float = DEFAULT_QUEUE_WAIT,
    trust_traces: bool = False,
) -> AdmissionFront:
    """Answer the admission paths here, bounded; pass everything else to `app`."""
    return AdmissionFront(
        service, app, max_in_flight=max_in_flight, queue_wait=queue_wait, trust_traces=trust_traces
    )
