"""Session recordings (DESIGN.md §3b): what the session gateway records of an exec, attach or
port-forward session, and what a recording is turned into.

A session is a run of records in one writer's chain that all carry its `session` id:

* `session.started`: who (user, groups), where (namespace, pod, container), what (command,
  tty, stdin), under which grant and request, approved by whom and why (as `action.allowed`
  records say it: `reason` is the grant's, `context.approvers` and `context.ticket` its own),
  and `context.decision` (`writer`, `seq`): the `action.allowed` record of the webhook's
  decision on the stream, which carries this session's id (when another webhook replica
  decided it, only that record's `session` links the two);
* `session.chunk`: bytes of one stream (`stdin`, `stdout`, `stderr`) with their timing:
  `context.chunk` (0, 1, 2, ... in chain order, so a missing chunk shows), `offsetMs` (from
  the start of the session to the chunk's first byte), `frames` ([offsetMs, length] of each
  write coalesced into the chunk, so replay keeps the original timing), `size` and `data`
  (base64 of the bytes);
* `session.resize`: the terminal's new `width` and `height` at `offsetMs`;
* `session.connection` (port-forward, whose bytes are counted, not recorded): one tunnelled
  connection (kubectl's `requestId` and the pod's `port`) `opened` at `offsetMs`, then
  `closed` with its `durationMs`, `bytes` (`toPod`, `fromPod`) and how it `ended`
  (`jitgate.core.events` names the ways);
* exactly one of `session.ended` (it ended by itself: the command exited, the client left)
  or `session.terminated` (jitgate ended it), with `reason`, `exitCode` when known, and the
  totals (`chunks`, bytes per stream; for port-forward also `connections`, how many closed).

Each chunk is a record, so its digest is a leaf of the writer's Merkle tree: one changed byte
is named by `jitgate audit verify`, and `jitgate audit prove` proves a single chunk.

Pure parts only: the record builders, the chunking policy (`Coalescer`: writes in, bounded
chunks out, by size or by age), the replay schedule and asciicast v2. The part with I/O (a
live session's bytes in, chunks appended to the audit writer, backpressure) is
`jitgate.audit.recorder`; reading sessions back out of a log is `jitgate.audit.sessionlog`.
"""

from __future__ import annotations

import base64
import codecs
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from jitgate.core.events import (
    CONNECTION_CLOSED,
    CONNECTION_OPENED,
    CONNECTION_STATES,
    SESSION_CHUNK,
    SESSION_CONNECTION,
    SESSION_ENDED,
    SESSION_RESIZE,
    SESSION_STARTED,
    SESSION_TERMINATED,
    Action,
    Actor,
    AuditEvent,
)

Stream = Literal["stdin", "stdout", "stderr"]
STREAMS: Final[tuple[Stream, ...]] = ("stdin", "stdout", "stderr")
SessionKind = Literal["exec", "attach", "portforward"]

# Why jitgate ends a session (`session.terminated`); `exited(code)` and CLIENT_CLOSED are the
# ways a session ends by itself (`session.ended`).
GRANT_EXPIRED: Final = "grant expired"
REVOKED: Final = "revoked"
IDLE_TIMEOUT: Final = "idle timeout"
GATEWAY_STOPPING: Final = "gateway stopping"
CLIENT_CLOSED: Final = "client closed"
LIMIT: Final = "limit"
RECORDING_FAILED: Final = "recording failed"
# The pod's side ended before the command's exit status: the output may be short.
STREAM_LOST: Final = "stream lost before the exit status"
UNREADABLE_TUNNEL: Final = "port-forward tunnel unreadable"
# The pod's side ended but the client took nothing more for the gateway's drain timeout.
CLIENT_NOT_READING: Final = "client stopped reading"


def format_bytes(size: int) -> str:
    """`64 KiB`, `1.5 MiB`, `900 bytes`: a size as a limit or a total is told."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Ending:
    """How a session ended: `reason` in the words above, whether jitgate cut it (`cut`: a
    `session.terminated` record) and the command's exit code when it exited."""

    reason: str
    cut: bool
    exit_code: int | None = None

    @classmethod
    def exited(cls, code: int) -> Ending:
        return cls(f"exited with code {code}", cut=False, exit_code=code)

    @classmethod
    def client_closed(cls) -> Ending:
        return cls(CLIENT_CLOSED, cut=False)

    @classmethod
    def terminated(cls, reason: str, detail: str | None = None) -> Ending:
        """jitgate cut the session: `terminated(REVOKED)`, `terminated(LIMIT, "64 MiB of
        output")` (the detail follows a colon)."""
        return cls(f"{reason}: {detail}" if detail else reason, cut=True)

    @property
    def record_type(self) -> str:
        return SESSION_TERMINATED if self.cut else SESSION_ENDED


@dataclass(frozen=True)
class SessionStart:
    """Everything `session.started` says. `approvers`, `reason` and `ticket` come from the
    grant (`jitgate.webhook.audit.grant_facts` reads them the same way for actions)."""

    session: str
    kind: SessionKind
    user: str
    namespace: str
    pod: str
    groups: tuple[str, ...] = ()
    container: str | None = None
    command: tuple[str, ...] | None = None
    tty: bool = False
    stdin: bool = False
    grant: str | None = None
    request: str | None = None
    approvers: tuple[str, ...] = ()
    reason: str | None = None
    ticket: str | None = None
    policies: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    ports: tuple[int, ...] = ()
    # The `action.allowed` record that let the stream open (writer, seq), when the gateway's
    # own webhook replica decided it; otherwise that record names this session.
    decision: tuple[str, int] | None = None

    def event(self, now: dt.datetime) -> AuditEvent:
        detail: dict[str, Any] = {"tty": self.tty, "stdin": self.stdin}
        if self.ports:
            detail["ports"] = list(self.ports)
        context: dict[str, Any] = {"approvers": list(self.approvers)}
        if self.ticket:
            context["ticket"] = self.ticket
        if self.policies:
            context["policies"] = list(self.policies)
        if self.width is not None and self.height is not None:
            context["terminal"] = {"width": self.width, "height": self.height}
        if self.decision is not None:
            context["decision"] = {"writer": self.decision[0], "seq": self.decision[1]}
        return AuditEvent(
            type=SESSION_STARTED,
            time=now,
            session=self.session,
            actor=Actor(user=self.user, groups=self.groups),
            namespace=self.namespace,
            action=Action(
                verb=self.kind,
                resource="pods",
                name=self.pod,
                subresource=self.kind,
                container=self.container,
                command=self.command,
                **detail,
            ),
            grant=self.grant,
            request=self.request,
            reason=self.reason,
            context=context,
        )


@dataclass(frozen=True)
class Chunk:
    """Bytes of one stream, coalesced from one or more writes (`frames`: offset and length
    of each, in order; their lengths add up to `len(data)`)."""

    stream: Stream
    seq: int
    frames: tuple[tuple[int, int], ...]
    data: bytes

    @property
    def offset_ms(self) -> int:
        return self.frames[0][0]

    def event(self, session: str, now: dt.datetime) -> AuditEvent:
        return AuditEvent(
            type=SESSION_CHUNK,
            time=now,
            session=session,
            context={
                "stream": self.stream,
                "chunk": self.seq,
                "offsetMs": self.offset_ms,
                "frames": [list(frame) for frame in self.frames],
                "size": len(self.data),
                "data": base64.b64encode(self.data).decode("ascii"),
            },
        )


class MalformedChunk(ValueError):
    """A `session.chunk` record whose payload does not add up."""


def chunk_of(context: Any) -> Chunk:
    """The chunk a `session.chunk` record's context describes; `MalformedChunk` when its
    fields are missing or disagree (frames that do not add up to the bytes, a bad stream)."""
    if not isinstance(context, dict):
        raise MalformedChunk("a session chunk without its context")
    stream, seq, frames, data = (context.get(k) for k in ("stream", "chunk", "frames", "data"))
    if stream not in STREAMS:
        raise MalformedChunk(f"a session chunk of unknown stream {stream!r}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise MalformedChunk("a session chunk without its number")
    if not isinstance(data, str):
        raise MalformedChunk(f"session chunk {seq} has no data")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as error:
        raise MalformedChunk(f"session chunk {seq} has data that is not base64") from error
    if not isinstance(frames, list) or not frames or not all(_is_frame(f) for f in frames):
        raise MalformedChunk(f"session chunk {seq} has no valid frames")
    parsed = tuple((int(f[0]), int(f[1])) for f in frames)
    if sum(length for _, length in parsed) != len(raw):
        raise MalformedChunk(f"session chunk {seq}: its frames do not add up to its bytes")
    return Chunk(stream, seq, parsed, raw)


def _is_frame(frame: Any) -> bool:
    return isinstance(frame, list) and len(frame) == 2 and all(_is_count(n) for n in frame)


def resize_event(
    session: str, now: dt.datetime, offset_ms: int, width: int, height: int
) -> AuditEvent:
    return AuditEvent(
        type=SESSION_RESIZE,
        time=now,
        session=session,
        context={"offsetMs": offset_ms, "width": width, "height": height},
    )


@dataclass(frozen=True)
class ForwardedConnection:
    """One port-forward connection: opened (`ended` None) or closed, with its totals."""

    request_id: str
    port: int
    offset_ms: int
    duration_ms: int = 0
    to_pod: int = 0
    from_pod: int = 0
    ended: str | None = None

    def event(self, session: str, now: dt.datetime) -> AuditEvent:
        context: dict[str, Any] = {
            "state": CONNECTION_OPENED if self.ended is None else CONNECTION_CLOSED,
            "requestId": self.request_id,
            "port": self.port,
            "offsetMs": self.offset_ms,
        }
        if self.ended is not None:
            context["durationMs"] = self.duration_ms
            context["bytes"] = {"toPod": self.to_pod, "fromPod": self.from_pod}
            context["ended"] = self.ended
        return AuditEvent(type=SESSION_CONNECTION, time=now, session=session, context=context)


class MalformedConnection(ValueError):
    """A `session.connection` record whose payload does not read."""


def connection_of(context: Any) -> ForwardedConnection:
    """The connection a `session.connection` record's context describes."""
    if not isinstance(context, dict):
        raise MalformedConnection("a session connection without its context")
    state, request_id = context.get("state"), context.get("requestId")
    if state not in CONNECTION_STATES or not isinstance(request_id, str):
        raise MalformedConnection("a session connection without its state or request id")

    def count(found: Any, what: str) -> int:
        if not _is_count(found):
            raise MalformedConnection(f"session connection {request_id} without its {what}")
        return int(found)

    port, offset = count(context.get("port"), "port"), count(context.get("offsetMs"), "offset")
    if state == CONNECTION_OPENED:
        return ForwardedConnection(request_id, port, offset)
    found = context.get("bytes")
    sizes: dict[str, Any] = found if isinstance(found, dict) else {}
    ended = context.get("ended")
    if not isinstance(ended, str):
        raise MalformedConnection(f"closed session connection {request_id} without its ending")
    return ForwardedConnection(
        request_id,
        port,
        offset,
        duration_ms=count(context.get("durationMs"), "duration"),
        to_pod=count(sizes.get("toPod"), "bytes to the pod"),
        from_pod=count(sizes.get("fromPod"), "bytes from the pod"),
        ended=ended,
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def end_event(
    session: str,
    now: dt.datetime,
    ending: Ending,
    *,
    offset_ms: int,
    chunks: int,
    sizes: dict[Stream, int],
    connections: int | None = None,
) -> AuditEvent:
    """`session.ended` or `session.terminated`, with the totals a reader checks the chunks
    (and a port-forward's closed connections) against: one missing at the end would
    otherwise go unnoticed."""
    context: dict[str, Any] = {
        "offsetMs": offset_ms,
        "chunks": chunks,
        "bytes": {stream: sizes.get(stream, 0) for stream in STREAMS},
    }
    if connections is not None:
        context["connections"] = connections
    if ending.exit_code is not None:
        context["exitCode"] = ending.exit_code
    return AuditEvent(
        type=ending.record_type, time=now, session=session, reason=ending.reason, context=context
    )


# ----------------------------------------------------------------- the chunking policy


@dataclass(frozen=True)
class ChunkPolicy:
    """When coalesced bytes become a chunk: at `max_bytes`, or `max_delay_ms` after the
    chunk's first byte, whichever comes first. Each stream has at most one open chunk, so at
    most `3 * max_bytes` bytes wait for a chunk at any time."""

    max_bytes: int = 32 * 1024
    max_delay_ms: int = 100

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("a chunk must hold at least one byte")
        if self.max_delay_ms < 0:
            raise ValueError("the chunk delay must not be negative")


@dataclass
class _Open:
    frames: list[tuple[int, int]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)


class Coalescer:
    """Writes in, chunks out, by `ChunkPolicy`. Chunks are numbered in the order they close,
    which is the order they must be appended in. Offsets are what the caller's clock says
    and must not go backwards per stream."""

    def __init__(self, policy: ChunkPolicy) -> None:
        self.policy = policy
        self._open: dict[Stream, _Open] = {}
        self._next = 0

    @property
    def buffered(self) -> int:
        """Bytes written but not yet in a closed chunk."""
        return sum(len(chunk.data) for chunk in self._open.values())

    @property
    def closed(self) -> int:
        """How many chunks have closed so far."""
        return self._next

    def add(self, stream: Stream, offset_ms: int, data: bytes) -> list[Chunk]:
        """Take one write; the chunks it filled (a large write fills several)."""
        done = self.due(offset_ms)
        view = memoryview(data)
        while view:
            current = self._open.setdefault(stream, _Open())
            room = self.policy.max_bytes - len(current.data)
            part, view = view[:room], view[room:]
            current.frames.append((offset_ms, len(part)))
            current.data += part
            if len(current.data) >= self.policy.max_bytes:
                done.append(self._close(stream))
        return done

    def due(self, now_ms: int) -> list[Chunk]:
        """The open chunks whose first byte is `max_delay_ms` old (or older) by `now_ms`."""
        late = [
            stream
            for stream, chunk in self._open.items()
            if now_ms - chunk.frames[0][0] >= self.policy.max_delay_ms
        ]
        return [self._close(stream) for stream in sorted(late, key=self._first_offset)]

    def drain(self) -> list[Chunk]:
        """Every open chunk, oldest first: the session is ending."""
        return [self._close(stream) for stream in sorted(self._open, key=self._first_offset)]

    def _first_offset(self, stream: Stream) -> int:
        return self._open[stream].frames[0][0]

    def _close(self, stream: Stream) -> Chunk:
        current = self._open.pop(stream)
        chunk = Chunk(stream, self._next, tuple(current.frames), bytes(current.data))
        self._next += 1
        return chunk


# ----------------------------------------------------------------- playing a recording


@dataclass(frozen=True)
class Frame:
    """One write of a recorded session, as it happened."""

    offset_ms: int
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class Resize:
    offset_ms: int
    width: int
    height: int


def frames_of(chunks: Iterable[Chunk]) -> list[Frame]:
    """The writes inside chunks, in time order (chunks in chain order first among equals).
    A write that filled one chunk and went on in the next is one write again."""
    frames: list[Frame] = []
    for chunk in chunks:
        start = 0
        for offset, length in chunk.frames:
            frames.append(Frame(offset, chunk.stream, chunk.data[start : start + length]))
            start += length
    merged: list[Frame] = []
    for frame in sorted(frames, key=lambda frame: frame.offset_ms):  # stable: chain order
        last = merged[-1] if merged else None
        if last is not None and (last.offset_ms, last.stream) == (frame.offset_ms, frame.stream):
            merged[-1] = Frame(last.offset_ms, last.stream, last.data + frame.data)
        else:
            merged.append(frame)
    return merged


def replay_steps(
    frames: Iterable[Frame], *, speed: float = 1.0, max_idle_s: float | None = None
) -> list[tuple[float, bytes]]:
    """What replay writes to the terminal: (seconds to wait first, output bytes), for the
    output streams. `speed` divides every pause; `max_idle_s` caps each pause (after speed),
    as asciinema's --idle-time-limit does."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    steps: list[tuple[float, bytes]] = []
    last_ms = 0
    for frame in frames:
        if frame.stream == "stdin":
            continue
        pause = max(frame.offset_ms - last_ms, 0) / 1000 / speed
        if max_idle_s is not None:
            pause = min(pause, max_idle_s)
        steps.append((pause, frame.data))
        last_ms = max(last_ms, frame.offset_ms)
    return steps


@dataclass(frozen=True)
class CastHeader:
    width: int
    height: int
    timestamp: int  # Unix seconds of the session's start
    title: str | None = None
    command: str | None = None


DEFAULT_SIZE: Final = (80, 24)


def asciicast(
    header: CastHeader,
    events: Sequence[Frame | Resize],
    *,
    include_input: bool = False,
    idle_time_limit: float | None = None,
) -> str:
    """asciicast v2 (header line, then `[seconds, code, data]` lines): `o` for stdout and
    stderr, `i` for stdin when `include_input`, `r` for resizes.

    Output is byte-exact for UTF-8: each stream is decoded incrementally, so a character split
    across writes is emitted whole with the write that completes it, and the `o` strings
    encoded as UTF-8 are exactly the recorded bytes. Bytes that are not UTF-8 cannot be
    carried by asciicast's JSON strings; they become U+FFFD (the log keeps the bytes).
    """
    head: dict[str, Any] = {
        "version": 2,
        "width": header.width,
        "height": header.height,
        "timestamp": header.timestamp,
    }
    if idle_time_limit is not None:
        head["idle_time_limit"] = idle_time_limit
    if header.command:
        head["command"] = header.command
    if header.title:
        head["title"] = header.title
    lines = [json.dumps(head, ensure_ascii=False)]
    decoders = {stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in STREAMS}
    last_ms = 0
    for event in events:
        last_ms = max(last_ms, event.offset_ms)
        if isinstance(event, Resize):
            lines.append(_cast_line(event.offset_ms, "r", f"{event.width}x{event.height}"))
            continue
        if event.stream == "stdin" and not include_input:
            continue
        text = decoders[event.stream].decode(event.data)
        if text:
            lines.append(_cast_line(event.offset_ms, _code(event.stream), text))
    for stream, decoder in decoders.items():
        rest = decoder.decode(b"", final=True)
        if rest and (stream != "stdin" or include_input):
            lines.append(_cast_line(last_ms, _code(stream), rest))
    return "\n".join(lines) + "\n"


def _code(stream: Stream) -> str:
    return "i" if stream == "stdin" else "o"


def _cast_line(offset_ms: int, code: str, data: str) -> str:
    return json.dumps([round(offset_ms / 1000, 3), code, data], ensure_ascii=False)
