"""A port-forward session's connections, seen in the SPDY tunnel the relay passes on.

kubectl port-forward makes one SPDY connection per session and, for each local connection,
two streams with the same `requestid` header: `streamtype: error` (the pod's side writes an
error message there, if any) then `streamtype: data` (the connection's bytes both ways), each
naming the pod's `port` (client-go tools/portforward). `PortForwardObserver` reads a copy of
every message the relay passes (`spdy.FrameReader`, one per direction) and records each
connection as `session.connection`: `opened` when its first stream opens, `closed` once every
stream of it has ended both ways (FIN from both sides, or a reset), with the DATA bytes each
way, its duration and how it ended (`jitgate.core.events`). Connections still open when the
session ends are closed with it.

Fail closed: the relay hands each message to the observer BEFORE passing it on. Bytes that are
not SPDY/3.1, a stream without the port-forward headers, data on a stream never opened, or more
than `max_open` connections at once raise `TunnelCut`, and the relay ends the session with its
reason instead of relaying what it cannot account for. DATA arriving on a stream after it was reset
(the other side's frames in flight; the receiver discards them) is counted in `late_bytes`
and logged with the session's end, not in the connection's bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final, Literal

from jitgate.webhook.gateway import spdy

from jitgate.audit.recorder import SessionRecorder
from jitgate.core.events import (
    CLOSED_BY_BOTH,
    OPEN_AT_SESSION_END,
    POD_ERROR,
    RESET_BY_CLIENT,
    RESET_BY_POD,
)
from jitgate.core.sessions import LIMIT, UNREADABLE_TUNNEL, Ending, ForwardedConnection

logger = logging.getLogger(__name__)

Side = Literal["client", "pod"]
STREAM_TYPES: Final = ("data", "error")
MAX_OPEN_CONNECTIONS: Final = 256
ERROR_MESSAGE_BYTES: Final = 1024  # of the pod's error message, kept for the record


class TunnelCut(Exception):
    """The tunnel cannot be observed (or exceeds its bounds): the session must end, with
    `ending`; the message says why, in the user's words."""

    def __init__(self, ending: Ending, message: str) -> None:
        super().__init__(message)
        self.ending = ending


def _unreadable(side: Side, what: str) -> TunnelCut:
    detail = f"the {side}'s side sent {what}"
    return TunnelCut(
        Ending.terminated(UNREADABLE_TUNNEL, detail),
        f"its port-forward tunnel cannot be recorded ({detail})",
    )


@dataclass
class _Stream:
    kind: str  # "data" or "error"
    open_sides: set[Side] = field(default_factory=lambda: {"client", "pod"})


@dataclass
class _Connection:
    request_id: str
    port: int
    opened_ms: int
    streams: dict[int, _Stream] = field(default_factory=dict)
    to_pod: int = 0
    from_pod: int = 0
    reset_by: Side | None = None
    error: bytearray = field(default_factory=bytearray)

    @property
    def finished(self) -> bool:
        has_data = any(stream.kind == "data" for stream in self.streams.values())
        return has_data and not any(stream.open_sides for stream in self.streams.values())

    def closed(self, now_ms: int, ended: str | None = None) -> ForwardedConnection:
        if ended is None:
            if self.error:
                message = self.error.decode("utf-8", "replace").strip()
                ended = f"{POD_ERROR}: {message}"
            elif self.reset_by is not None:
                ended = RESET_BY_CLIENT if self.reset_by == "client" else RESET_BY_POD
            else:
                ended = CLOSED_BY_BOTH
        return ForwardedConnection(
            self.request_id,
            self.port,
            self.opened_ms,
            duration_ms=max(now_ms - self.opened_ms, 0),
            to_pod=self.to_pod,
            from_pod=self.from_pod,
            ended=ended,
        )


class PortForwardObserver:
    """Records the connections of one port-forward session (see the module docstring)."""

    def __init__(self, recorder: SessionRecorder, *, max_open: int = MAX_OPEN_CONNECTIONS) -> None:
        self._recorder = recorder
        self._max_open = max_open
        self._readers: dict[Side, spdy.FrameReader] = {
            "client": spdy.FrameReader(),
            "pod": spdy.FrameReader(keep=ERROR_MESSAGE_BYTES),
        }
        self._connections: dict[str, _Connection] = {}  # open ones, by request id
        self._streams: dict[int, _Connection] = {}  # their streams
        self._highest = {0: 0, 1: 0}  # the highest stream id opened, by parity (who opened)
        self.late_bytes = 0

    async def from_client(self, data: bytes) -> None:
        """Observe a message from kubectl; `TunnelCut` when it must not be relayed."""
        await self._observe("client", data)

    async def from_pod(self, data: bytes) -> None:
        """Observe a message from the pod's side; `TunnelCut` when it must not be relayed."""
        await self._observe("pod", data)

    async def end(self, ending: Ending) -> None:
        """The session ended: close the connections still open with it."""
        now = self._recorder.offset_ms()
        still_open = [
            connection.closed(now, f"{OPEN_AT_SESSION_END} ({ending.reason})")
            for connection in self._connections.values()
        ]
        self._connections.clear()
        self._streams.clear()
        for side, reader in self._readers.items():
            if not reader.between_frames:  # a cut tunnel, or a frame the other end never got
                logger.warning(
                    "Session %s: the %s's side of the tunnel stopped in the middle of a frame",
                    self._recorder.session, side,
                )  # fmt: skip
        if self.late_bytes:
            logger.info(
                "Session %s: %d bytes came for port-forward streams already ended (discarded "
                "by their receiver)", self._recorder.session, self.late_bytes,
            )  # fmt: skip
        if still_open:
            await self._recorder.connections(still_open)

    async def _observe(self, side: Side, data: bytes) -> None:
        try:
            events = self._readers[side].feed(data)
        except spdy.Malformed as error:
            raise _unreadable(side, f"bytes that are not SPDY/3.1: {error}") from error
        # State first, records after: the other direction cannot interleave between the two.
        changes = [change for event in events for change in self._apply(side, event)]
        if changes:
            await self._recorder.connections(changes)

    def _apply(self, side: Side, event: spdy.Event) -> list[ForwardedConnection]:
        match event:
            case spdy.Opened():
                return self._open(side, event)
            case spdy.Data():
                return self._data(side, event)
            case spdy.Finished():
                return self._half_closed(side, event.stream)
            case spdy.Reset():
                return self._reset(side, event.stream)
            case spdy.GoAway():
                return []  # the WebSocket closes next; open connections end with the session

    def _open(self, side: Side, event: spdy.Opened) -> list[ForwardedConnection]:
        if side != "client":
            raise _unreadable(side, f"a stream of its own ({event.stream})")
        parity = event.stream % 2
        if event.stream <= self._highest[parity]:
            raise _unreadable(side, f"stream {event.stream} again")
        self._highest[parity] = event.stream
        kind, port, request_id = (event.headers.get(k) for k in ("streamtype", "port", "requestid"))
        if kind not in STREAM_TYPES or port is None or not port.isdigit() or request_id is None:
            raise _unreadable(side, f"stream {event.stream} without the port-forward headers")
        opened: list[ForwardedConnection] = []
        connection = self._connections.get(request_id)
        if connection is None:
            if len(self._connections) >= self._max_open:
                detail = f"more than {self._max_open} port-forward connections open at once"
                raise TunnelCut(Ending.terminated(LIMIT, detail), detail)
            connection = _Connection(request_id, int(port), self._recorder.offset_ms())
            self._connections[request_id] = connection
            opened.append(ForwardedConnection(request_id, int(port), connection.opened_ms))
        elif connection.port != int(port) or any(
            stream.kind == kind for stream in connection.streams.values()
        ):
            raise _unreadable(side, f"stream {event.stream} at odds with request {request_id}")
        connection.streams[event.stream] = stream = _Stream(kind)
        self._streams[event.stream] = connection
        if event.fin:
            stream.open_sides.discard(side)
        return opened + self._done(connection)

    def _data(self, side: Side, event: spdy.Data) -> list[ForwardedConnection]:
        connection = self._streams.get(event.stream)
        if connection is None:
            if event.stream > self._highest[event.stream % 2]:
                raise _unreadable(side, f"data on stream {event.stream}, which was never opened")
            self.late_bytes += event.size
            return []
        stream = connection.streams[event.stream]
        if side not in stream.open_sides:  # after a reset (or its own FIN): discarded
            self.late_bytes += event.size
            return []
        if stream.kind == "data":
            if side == "client":
                connection.to_pod += event.size
            else:
                connection.from_pod += event.size
        elif side == "pod":
            room = ERROR_MESSAGE_BYTES - len(connection.error)
            connection.error += event.head[:room]
        return self._half_closed(side, event.stream) if event.fin else []

    def _half_closed(self, side: Side, stream_id: int) -> list[ForwardedConnection]:
        connection = self._streams.get(stream_id)
        if connection is None:
            return []
        connection.streams[stream_id].open_sides.discard(side)
        return self._done(connection)

    def _reset(self, side: Side, stream_id: int) -> list[ForwardedConnection]:
        connection = self._streams.get(stream_id)
        if connection is None:
            return []  # a stream already ended: a reset may follow a close
        stream = connection.streams[stream_id]
        if stream.kind == "data" and stream.open_sides == {"client", "pod"}:
            connection.reset_by = connection.reset_by or side  # before either side closed
        stream.open_sides.clear()
        return self._done(connection)

    def _done(self, connection: _Connection) -> list[ForwardedConnection]:
        if not connection.finished:
            return []
        del self._connections[connection.request_id]
        for stream_id in connection.streams:
            del self._streams[stream_id]
        return [connection.closed(self._recorder.offset_ms())]
