"""The HTTP/1.1 protocol the webhook serves with: uvicorn's httptools one, each answer written
to the connection in one piece.

uvicorn writes a response's head as soon as the app starts it and its body when the app
sends it: two TLS records and two socket writes per answer (and two reads at the API
server), a noticeable share of an admission answer's cost. Here both go out together: every
write of one event-loop turn is gathered and handed to the TLS transport once, at the end of
that turn, which is the same turn (an answer is started and finished without waiting).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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

    def close(self) -> None:
        self._flush()  # what was written before the close still goes out, as it would
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each response (head and body) in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWritePerTurn(transport, self.loop)  # type: ignore[assignment]
