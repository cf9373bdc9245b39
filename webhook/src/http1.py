"""The HTTP/1.1 protocol the webhook serves with: uvicorn's httptools one, each answer written
to the connection in one piece, and admission reviews answered without ASGI.

uvicorn writes a response's head as soon as the app starts it and its body when the app
sends it: two TLS records and two socket writes per answer (and two reads at the API
server), a noticeable share of an admission answer's cost. Here both go out together: every
write of one event-loop turn is gathered and handed to the TLS transport once, at the end of
that turn, which is the same turn (an answer is started and finished without waiting).

A review (`POST` to one of the app's `DirectAnswers.paths`) is read whole by the protocol
and answered by `DirectAnswers.answer`: no ASGI scope, request-response cycle, receive and
send messages or header checks (~5% of an allowed exec's instructions). Anything
unusual about the request (HTTP/1.0, `Expect: 100-continue`, an upgrade, a percent-encoded
path, one sent before the previous answer) goes through ASGI as before, and so does every
other path and method (health, metrics, a `GET /validate`). The protocol's bookkeeping is
uvicorn's: keep-alive and its timeout, pipelined requests, graceful shutdown (the answer's
task is one of the server's tasks), write flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, Final, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

logger = logging.getLogger(__name__)

_CONTENT_TYPE: Final = b"content-type: application/json\r\n"
_FAILED: Final = b"Internal Server Error"
# Linux only; elsewhere the client's first request may wait for a delayed ACK (see below).
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


class DirectAnswers(Protocol):
    """What the protocol answers itself: an app with these (`routers.admission`)."""

    @property
    def paths(self) -> frozenset[str]: ...  # answered for POST only

    @property
    def max_body(self) -> int: ...

    async def answer(
        self, path: str, body: bytes, caller: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes]: ...

    def too_large(self) -> tuple[int, bytes]: ...


def peer(client: tuple[str, int] | None) -> str:
    """Who sent a request on a connection without a verified client certificate: its
    peer's address (`jitgate.webhook.callers`)."""
    return str(client[0]) if client else ""


class _OneWritePerTurn:
    """A transport whose writes within one event-loop turn reach the connection as one.

    Everything but `write` and `close` is the connection's own (pausing, extra info, ...).
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write_whole(self, data: bytes) -> None:
        """Write a whole response now, after anything gathered this turn: it is one piece
        already, and waiting for the turn's end would hold the answer back by a turn, behind
        every other review that became ready meanwhile."""
        if self._pending:
            self._pending.append(data)
            self._flush()
        elif not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()  # asked once a review (not through __getattr__)

    def close(self) -> None:
        self._flush()  # what was written before the close still goes out, as it would
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Review:
    """One review the protocol reads and answers itself, as uvicorn's protocol sees its
    request-response cycle (`response_complete`, `keep_alive`, `disconnected`)."""

    __slots__ = (
        "chunks", "disconnected", "headers", "keep_alive", "path", "query", "response_complete",
        "size", "too_large",
    )  # fmt: skip

    def __init__(
        self,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        too_large: bool,
    ) -> None:
        self.path = path
        self.query = query
        self.headers = headers
        # The body as it arrived: mostly one piece, which `body` then hands on uncopied.
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = keep_alive
        self.too_large = too_large
        self.disconnected = False
        self.response_complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def direct_answers(app: object) -> DirectAnswers | None:
    """`app` if it answers reviews itself (`DirectAnswers`), else None."""
    if hasattr(app, "answer") and hasattr(app, "paths"):
        return app  # type: ignore[return-value]
    return None


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each response (head and body) in one write, reviews
    answered directly when the app can (`DirectAnswers`)."""

    direct: DirectAnswers | None = None
    # Who sends this connection's reviews (`jitgate.webhook.callers`): the same for all of them.
    caller: str = ""
    # When the last answer went out with nothing to read since (None: a request is under
    # way). The keep-alive timeout is one timer per connection, pushed back when it fires
    # (`_idle_check`), not one made and cancelled per request as uvicorn's (~1.5 us each).
    _idle_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._whole = _OneWritePerTurn(transport, self.loop)
        self.transport = self._whole  # type: ignore[assignment]
        self.direct = direct_answers(self.app)
        self.caller = peer(self.client)
        # The handshake just ended with the client's Finished, and the server issues no
        # session ticket to answer it with (`jitgate.webhook.tls`): acknowledge it now. A
        # client that leaves Nagle's algorithm on holds its first request until this ACK,
        # which the kernel would otherwise delay by 40 ms.
        sock = transport.get_extra_info("socket")
        if _QUICKACK is not None and sock is not None:
            # A connection the client already closed has nothing left to acknowledge.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def on_message_begin(self) -> None:
        # uvicorn's, but the ASGI scope is made only for a request ASGI serves
        # (`on_headers_complete`): a review needs none.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # uvicorn calls this as data arrives: the connection is busy

    def on_response_complete(self) -> None:
        # uvicorn's, the keep-alive timeout armed as `_idle_since` says.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._idle_check
            )

    def _idle_check(self) -> None:
        """Close the connection once it has been idle `timeout_keep_alive` seconds."""
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # busy: its answer's `on_response_complete` arms the timeout again
        due = self._idle_since + self.timeout_keep_alive
        if self.loop.time() >= due:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(due, self._idle_check)

    def _direct_path(self) -> tuple[str, bytes] | None:
        """The review path this request is answered on directly, if it is one, and the
        URL's query."""
        direct = self.direct
        if direct is None or self.parser.get_method() != b"POST":
            return None
        if self.parser.get_http_version() != "1.1" or self.expect_100_continue:
            return None
        if self.parser.should_upgrade() or self.root_path or self.limit_concurrency is not None:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind an answer not yet written: uvicorn queues it
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        if path not in direct.paths:
            return None  # percent-encoded: not a review path
        return path, url.query or b""

    def on_headers_complete(self) -> None:
        direct_path = self._direct_path()
        if direct_path is None:
            # ASGI serves it: its scope as uvicorn's `on_message_begin` makes it, with what
            # was read since.
            url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.scope["headers"] = url, headers, headers
            self.expect_100_continue = expect_100_continue
            super().on_headers_complete()
            return
        assert self.direct is not None
        declared = content_length(self.headers)
        self.cycle = _Review(  # type: ignore[assignment]
            *direct_path,
            self.headers,
            keep_alive=self.parser.should_keep_alive(),
            too_large=declared is not None and declared > self.direct.max_body,
        )

    def on_body(self, body: bytes) -> None:
        review = self.cycle
        if not isinstance(review, _Review):
            super().on_body(body)
            return
        if review.too_large:
            return
        review.chunks.append(body)
        review.size += len(body)
        if review.size > self.direct.max_body:
            review.too_large = True
            review.chunks = []

    def on_message_complete(self) -> None:
        review = self.cycle
        if not isinstance(review, _Review):
            super().on_message_complete()
            return
        task = self.loop.create_task(self._answer(review))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, review: _Review) -> None:
        direct = self.direct
        assert direct is not None
        try:
            if review.too_large:
                status, body = direct.too_large()
            else:
                status, body = await direct.answer(
                    review.path, review.body, self.caller, review.query, review.headers
                )
        except Exception:
            # As uvicorn answers an app that failed: a 500, and the connection closed.
            logger.exception("Answering a review on %s failed.", review.path)
            status, body, review.keep_alive = 500, _FAILED, False
        if self.flow.write_paused and not review.disconnected:
            await self.flow.drain()
        if review.disconnected:
            return
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head.append(_CONTENT_TYPE)
        head.append(b"content-length: %d\r\n" % len(body))
        if not review.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self._whole.write_whole(b"".join(head))
        review.response_complete = True
        if not review.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        review = self.cycle
        if isinstance(review, _Review):
            review.disconnected = not review.response_complete
            self.cycle = None
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """A request's declared Content-Length (None when absent or not a number)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
