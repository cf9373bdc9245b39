"""`POST /validate` and `POST /mutate`: AdmissionReview in, AdmissionReview out, straight on ASGI.

The API server waits for every answer, so the two admission paths skip FastAPI altogether:
its middleware stack and routing cost about as much as the decision (profiled: a fifth of
the event loop's time per review). `admission_front` answers them and hands every other
request (health, metrics, unknown paths) to the FastAPI app.

Bounded concurrency: at most `max_in_flight` reviews are decided at once; a review that finds
no free slot within `queue_wait` seconds is denied at once with a reason that says so
(`OVERLOADED`), never left to time out and never answered with a 5xx. Memory stays bounded
because waiting reviews hold nothing but their parsed body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from jitgate.webhook.callers import caller_of
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
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

UNDECIDED: Final = "jitgate could not decide this request because of an internal error"
OVERLOADED: Final = (
    "jitgate is overloaded and could not decide this request in time; try again shortly"
)
DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_QUEUE_WAIT: Final = 2.0  # seconds; well inside the API server's 10 s webhook timeout

_CONTENT_TYPE: Final = (b"content-type", b"application/json")
_TOO_LARGE: Final = f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB."

Decider = Callable[[AdmissionService], Callable[[AdmissionRequest, str], Awaitable[Answer]]]
_ENDPOINTS: Final[dict[str, Decider]] = {
    "/validate": lambda service: service.validate,
    "/mutate": lambda service: lambda review, _caller: service.mutate(review),
}


class _BodyTooLarge(ReviewError):
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


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The body, refused as soon as it exceeds the limit (declared or streamed)."""
    declared = _declared_length(scope)
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _BodyTooLarge(_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge(_TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def admission_front(
    service: AdmissionService,
    app: ASGIApp,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    queue_wait: float = DEFAULT_QUEUE_WAIT,
) -> ASGIApp:
    """Answer the admission paths here, bounded; pass everything else to `app`."""
    slots = asyncio.Semaphore(max_in_flight)
    metrics = service.metrics
    # Resolved once: a labelled child's lookup takes a lock and a dictionary per review.
    observe = {path: metrics.latency.labels(path[1:]).observe for path in _ENDPOINTS}

    async def decide(path: str, review: AdmissionRequest, caller: str) -> Answer:
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), queue_wait)
            except TimeoutError:
                metrics.shed.labels(path[1:]).inc()
                return deny(OVERLOADED, "TooManyRequests")
        else:
            await slots.acquire()
        try:
            return await _ENDPOINTS[path](service)(review, caller)
        except Exception:
            # Never a 500 and never an allow: the API server applies its failurePolicy to
            # errors, and a denial states plainly what happened.
            logger.exception("Deciding AdmissionReview %s failed.", review.uid)
            return deny(UNDECIDED, "InternalError")
        finally:
            slots.release()

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in _ENDPOINTS:
            await app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _send(send, 405, _error("Method Not Allowed."))
            return
        started = time.perf_counter()
        try:
            review = parse_review(await _read_body(scope, receive))
        except ReviewError as error:
            metrics.malformed.inc()
            await _send(send, 400, _error(str(error)))
            return
        except _Disconnected:
            return
        answer = await decide(path, review, caller_of(scope))
        await _send(send, 200, render(review.uid, answer))
        observe[path](time.perf_counter() - started)

    return front
