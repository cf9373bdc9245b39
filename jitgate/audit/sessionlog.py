"""Sessions read back out of the audit log: what `jitgate audit sessions` lists and what
`replay` and `export --format asciicast` play. Pure (records in, sessions out).

The records of one session are those carrying its `session` id (`jitgate.core.sessions`
describes them); the `action.allowed` record of the webhook's decision on the gateway's stream
carries it too, and is the session's `decision` (the link from the approval, through the
decision, to the recording). A recording is checked as it is read: chunk numbers must run
0, 1, 2, ... without a gap or repeat, and must add up to the totals the end record states; a
session without an end record is listed as open (or cut off by a crash) and played as far as
it goes.
A port-forward session has connections instead of a recording: each opened and then closed
(`session.connection`), as many closed as its end record counts.
Whether the records themselves are intact is `jitgate audit verify`'s job (each chunk is a
chained record and a Merkle leaf).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from jitgate.audit.model import AuditRecord
from jitgate.core.events import (
    ACTION_ALLOWED,
    SESSION_CHUNK,
    SESSION_CONNECTION,
    SESSION_ENDED,
    SESSION_RESIZE,
    SESSION_STARTED,
    SESSION_TERMINATED,
)
from jitgate.core.sessions import (
    DEFAULT_SIZE,
    STREAMS,
    CastHeader,
    Chunk,
    ForwardedConnection,
    Frame,
    MalformedChunk,
    MalformedConnection,
    Resize,
    chunk_of,
    connection_of,
    frames_of,
)

STILL_OPEN: Final = "open, or cut off (no end record)"


class RecordingError(ValueError):
    """A session's recording cannot be played as recorded (a chunk is missing or damaged)."""


@dataclass
class _Building:
    keep: bool = False  # keep the bytes (a recording to play), or only count them (a listing)
    started: AuditRecord | None = None
    numbers: list[int] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    resizes: list[Resize] = field(default_factory=list)
    connections: dict[str, ForwardedConnection] = field(default_factory=dict)  # by request id
    end: AuditRecord | None = None
    problems: list[str] = field(default_factory=list)
    first: AuditRecord | None = None


@dataclass(frozen=True)
class Session:
    """One session as its records tell it."""

    id: str
    writer: str
    started_at: dt.datetime
    started: AuditRecord | None
    end: AuditRecord | None
    decided: AuditRecord | None  # the action.allowed record naming this session, if read
    chunks: tuple[Chunk, ...]  # empty unless read as a recording (`sessions_of(play=...)`)
    chunk_count: int
    resizes: tuple[Resize, ...]
    problems: tuple[str, ...]
    connections: tuple[ForwardedConnection, ...] = ()  # port-forward, in the order they opened

    # -- what the listing shows ---------------------------------------------------------

    @property
    def user(self) -> str | None:
        return self.started.user if self.started else None

    @property
    def namespace(self) -> str | None:
        return self.started.namespace if self.started else None

    @property
    def kind(self) -> str | None:
        action = self.started.action if self.started else None
        return action.verb if action else None

    @property
    def pod(self) -> str | None:
        action = self.started.action if self.started else None
        return action.name if action else None

    @property
    def container(self) -> str | None:
        action = self.started.action if self.started else None
        return action.container if action else None

    @property
    def command(self) -> tuple[str, ...] | None:
        action = self.started.action if self.started else None
        return action.command if action else None

    @property
    def grant(self) -> str | None:
        return self.started.grant if self.started else None

    @property
    def request(self) -> str | None:
        return self.started.request if self.started else None

    @property
    def reason(self) -> str | None:
        return self.started.reason if self.started else None

    @property
    def approvers(self) -> tuple[str, ...]:
        found = _context(self.started).get("approvers")
        return tuple(str(a) for a in found) if isinstance(found, list) else ()

    @property
    def terminal(self) -> tuple[int, int] | None:
        size = _context(self.started).get("terminal")
        if isinstance(size, dict):
            width, height = size.get("width"), size.get("height")
            if isinstance(width, int) and isinstance(height, int):
                return width, height
        return None

    @property
    def decision(self) -> str | None:
        """`writer:seq` of the `action.allowed` record that let the session open: as
        `session.started` names it, else the one found carrying the session's id."""
        named = _context(self.started).get("decision")
        if isinstance(named, dict) and isinstance(named.get("seq"), int):
            return f"{named.get('writer')}:{named['seq']}"
        if self.decided is not None:
            return f"{self.decided.writer}:{self.decided.seq}"
        return None

    @property
    def duration(self) -> dt.timedelta | None:
        """From start to end by the session's own clock (the end record's offset)."""
        offset = _context(self.end).get("offsetMs")
        if isinstance(offset, int):
            return dt.timedelta(milliseconds=offset)
        return None

    @property
    def how_ended(self) -> str:
        """`exited with code 0`, `terminated: revoked`, ... or that there is no end yet."""
        if self.end is None:
            return STILL_OPEN
        reason = self.end.reason or "unknown"
        return f"terminated: {reason}" if self.end.type == SESSION_TERMINATED else reason

    @property
    def forwarded(self) -> tuple[int, int]:
        """Port-forward bytes to and from the pod, over the closed connections."""
        return (
            sum(connection.to_pod for connection in self.connections),
            sum(connection.from_pod for connection in self.connections),
        )

    @property
    def exit_code(self) -> int | None:
        code = _context(self.end).get("exitCode")
        return code if isinstance(code, int) else None

    def summary(self) -> dict[str, Any]:
        """The listing's JSON form."""
        return {
            "session": self.id,
            "writer": self.writer,
            "kind": self.kind,
            "user": self.user,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "command": list(self.command) if self.command is not None else None,
            "grant": self.grant,
            "request": self.request,
            "decision": self.decision,
            "approvers": list(self.approvers),
            "reason": self.reason,
            "start": self.started_at.isoformat().replace("+00:00", "Z"),
            "durationSeconds": self.duration.total_seconds() if self.duration else None,
            "ended": self.how_ended,
            "exitCode": self.exit_code,
            "chunks": self.chunk_count,
            **self._forwarding(),
            "problems": list(self.problems),
        }

    def _forwarding(self) -> dict[str, Any]:
        if self.kind != "portforward":
            return {"connections": None, "forwardedBytes": None}
        to_pod, from_pod = self.forwarded
        return {
            "connections": len(self.connections),
            "forwardedBytes": {"toPod": to_pod, "fromPod": from_pod},
        }

    # -- playing it ---------------------------------------------------------------------

    def frames(self) -> list[Frame]:
        """Every recorded write in time order; `RecordingError` when chunks are missing."""
        if self.problems:
            raise RecordingError(f"session {self.id}: {'; '.join(self.problems)}")
        if len(self.chunks) != self.chunk_count:
            raise ValueError(f"session {self.id} was read without its bytes (sessions_of play=)")
        return frames_of(self.chunks)

    def events(self) -> list[Frame | Resize]:
        """Writes and resizes in time order, for asciicast (a resize before the output of
        the same millisecond: the program redraws for the new size)."""
        merged: list[Frame | Resize] = [*self.resizes, *self.frames()]
        return sorted(merged, key=lambda event: event.offset_ms)

    def cast_header(self) -> CastHeader:
        first = self.resizes[0] if self.resizes and self.resizes[0].offset_ms == 0 else None
        width, height = self.terminal or (
            (first.width, first.height) if first is not None else DEFAULT_SIZE
        )
        title = f"{self.user} on {self.namespace}/{self.pod}" if self.started else self.id
        command = " ".join(self.command) if self.command else None
        return CastHeader(
            width=width,
            height=height,
            timestamp=int(self.started_at.timestamp()),
            title=title,
            command=command,
        )


def _context(record: AuditRecord | None) -> dict[str, Any]:
    return dict(record.context) if record is not None and record.context else {}


def sessions_of(records: Iterable[AuditRecord], *, play: Iterable[str] = ()) -> list[Session]:
    """Every session the records mention, in order of their first record. Only the sessions
    named in `play` keep their bytes (memory: a listing of a large log holds no chunk data)."""
    building: dict[str, _Building] = {}
    decisions: dict[str, AuditRecord] = {}
    keep = frozenset(play)
    for record in records:
        if record.session is None:
            continue
        if record.type == ACTION_ALLOWED:
            decisions[record.session] = record
            continue
        if not record.type.startswith("session."):
            continue
        state = building.setdefault(record.session, _Building(keep=record.session in keep))
        if state.first is None:
            state.first = record
        _take(state, record)
    return [_finish(session, state, decisions.get(session)) for session, state in building.items()]


def _take(state: _Building, record: AuditRecord) -> None:
    where = f"{record.writer}:{record.seq}"
    if record.type == SESSION_STARTED:
        if state.started is not None:
            state.problems.append(f"a second session.started at {where}")
        else:
            state.started = record
    elif record.type == SESSION_CHUNK:
        try:
            chunk = chunk_of(record.context)
        except MalformedChunk as error:
            state.problems.append(f"{error} (record {where})")
            return
        state.numbers.append(chunk.seq)
        state.sizes[chunk.stream] = state.sizes.get(chunk.stream, 0) + len(chunk.data)
        if state.keep:
            state.chunks.append(chunk)
    elif record.type == SESSION_RESIZE:
        context = _context(record)
        offset, width, height = (context.get(k) for k in ("offsetMs", "width", "height"))
        if isinstance(offset, int) and isinstance(width, int) and isinstance(height, int):
            state.resizes.append(Resize(offset, width, height))
        else:
            state.problems.append(f"a resize without its offset or size (record {where})")
    elif record.type == SESSION_CONNECTION:
        try:
            connection = connection_of(record.context)
        except MalformedConnection as error:
            state.problems.append(f"{error} (record {where})")
            return
        known = state.connections.get(connection.request_id)
        if known is not None and (known.ended is not None or connection.ended is None):
            state.problems.append(f"connection {connection.request_id} recorded again at {where}")
        else:
            state.connections[connection.request_id] = connection
    elif record.type in (SESSION_ENDED, SESSION_TERMINATED):
        if state.end is not None:
            state.problems.append(f"a second end record at {where}")
        else:
            state.end = record


def _finish(session: str, state: _Building, decided: AuditRecord | None) -> Session:
    assert state.first is not None
    problems = list(state.problems)
    if state.started is None:
        problems.append("its session.started record is missing")
    numbers = state.numbers
    expected = list(range(len(numbers)))
    if numbers != expected:
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        if missing:
            problems.append(f"chunk {missing[0]} is missing")
        else:
            problems.append("its chunks are repeated or out of order")
    end = _context(state.end)
    if state.end is not None:
        stated = end.get("chunks")
        if isinstance(stated, int) and stated != len(numbers) and not problems:
            problems.append(
                f"the end record counts {stated} chunks but {len(numbers)} are in the log"
            )
        sizes = end.get("bytes")
        if isinstance(sizes, dict) and not problems:
            for stream in STREAMS:
                have = state.sizes.get(stream, 0)
                if sizes.get(stream, 0) != have:
                    problems.append(
                        f"the end record counts {sizes.get(stream)} bytes of {stream} but "
                        f"the chunks hold {have}"
                    )
    closed = [c for c in state.connections.values() if c.ended is not None]
    if state.end is not None:
        stated = end.get("connections")
        if isinstance(stated, int) and stated != len(closed):
            problems.append(
                f"the end record counts {stated} connections but {len(closed)} closed "
                "connections are in the log"
            )
        for connection in state.connections.values():
            if connection.ended is None:
                problems.append(f"connection {connection.request_id} has no closed record")
    first = state.started or state.first
    return Session(
        id=session,
        writer=first.writer,
        started_at=first.when,
        started=state.started,
        end=state.end,
        decided=decided,
        chunks=tuple(state.chunks),
        chunk_count=len(state.numbers),
        resizes=tuple(state.resizes),
        problems=tuple(problems),
        connections=tuple(closed),
    )
