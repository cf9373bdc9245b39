"""The session recorder: a live session's bytes in, `session.*` records in the audit chain out.

The session gateway makes one `SessionRecorder` per exec, attach or port-forward session, on
the same `AuditWriter` its decisions are recorded with (records and payloads:
`jitgate.core.sessions`):

    recorder = SessionRecorder(writer, start, clock=clock)
    await recorder.start()                    # session.started, durable; raises: no session
    try:
        while ...:
            await recorder.write("stdout", data)   # BEFORE relaying data to the client
            await recorder.resize(width, height)
            await recorder.connections([...])        # port-forward: connections, not bytes
            if recorder.idle_for() >= idle_timeout: ...
    finally:
        await recorder.end(Ending.exited(code))    # or Ending.terminated(REVOKED), ...

Timing comes from the injected clock: offsets are milliseconds since `start()`. Writes are
coalesced per stream into chunks of at most `ChunkPolicy.max_bytes`, closed when full or
`max_delay_ms` after their first byte (a ticker started by `start()` closes idle chunks; tests
call `flush_due()` with a manual clock instead). Chunks are queued on the writer in order
(`AuditWriter.submit`), so several share one group commit and chunk numbers follow the chain.

Bounded memory and backpressure: at most one open chunk per stream (3 x max_bytes) and at most
`max_unacked_bytes` of chunks queued but not yet durable. A `write` beyond that waits until the
writer catches up, so a relay that awaits `write` before reading more slows the session to the
speed of the log. Nothing is dropped: if an append fails, every later `write`, `resize` and
`flush_due` raises `RecordingFailed`, and the gateway must end the session (with
`Ending.terminated(RECORDING_FAILED)`; `end` then tries to say so, and raises if it cannot).
A session records at most `max_session_bytes` in all (stdin, stdout and stderr): the `write`
that would go beyond raises `RecordingLimit` (its bytes are neither recorded nor to be
relayed), as does every later one, and the gateway ends the session with the limit's
`ending` (`limit: ...`) and `message`.

Durability of chunks: the bytes of a chunk are relayed before the chunk is durable, at most
`max_delay_ms` plus one group commit earlier, and never more than `max_unacked_bytes` +
3 x max_bytes ahead of the log. A crash of the gateway can lose that window (the session then
has no end record, which `jitgate audit sessions` shows as "unknown: recording incomplete");
`session.started` and the end record are durable before `start` and `end` return.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from jitgate.audit.errors import AuditWriteError
from jitgate.audit.model import AuditRecord
from jitgate.core.clock import Clock
from jitgate.core.events import AuditEvent
from jitgate.core.sessions import (
    LIMIT,
    STREAMS,
    Chunk,
    ChunkPolicy,
    Coalescer,
    Ending,
    ForwardedConnection,
    SessionStart,
    Stream,
    end_event,
    format_bytes,
    resize_event,
)

logger = logging.getLogger("jitgate.audit.recorder")

DEFAULT_MAX_UNACKED_BYTES: Final = 1024 * 1024


class RecordingFailed(AuditWriteError):
    """The session's records cannot be written: the session must end."""


class RecordingLimit(Exception):
    """The session has recorded as much as one session may: it must end with `ending`, the
    user told `message`."""

    def __init__(self, limit: int) -> None:
        size = format_bytes(limit)
        self.message = f"it reached {size} recorded, the most one session may record"
        self.ending = Ending.terminated(LIMIT, f"{size} recorded")
        super().__init__(self.message)


class OrderedAppender(Protocol):
    """What the recorder needs of an `AuditWriter`: records queued in call order."""

    def submit(self, event: AuditEvent) -> asyncio.Future[AuditRecord]: ...


class SessionRecorder:
    """Records one session. Use from one event loop; see the module docstring."""

    def __init__(
        self,
        writer: OrderedAppender,
        start: SessionStart,
        *,
        clock: Clock,
        policy: ChunkPolicy | None = None,
        max_unacked_bytes: int = DEFAULT_MAX_UNACKED_BYTES,
        max_session_bytes: int | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = asyncio.sleep,
    ) -> None:
        if max_unacked_bytes < 1:
            raise ValueError("max_unacked_bytes must be at least 1")
        if max_session_bytes is not None and max_session_bytes < 1:
            raise ValueError("max_session_bytes must be at least 1")
        self._max_session_bytes = max_session_bytes
        self._limit: RecordingLimit | None = None
        self.info = start
        self._writer = writer
        self._clock = clock
        self._coalescer = Coalescer(policy or ChunkPolicy())
        self._max_unacked = max_unacked_bytes
        self._sleep = sleep
        self._started = clock.now()
        self._last_activity = self._started
        self._in_flight: deque[tuple[asyncio.Future[AuditRecord], int]] = deque()
        self._unacked = 0
        self._sizes: dict[Stream, int] = dict.fromkeys(STREAMS, 0)
        self._connections = 0  # port-forward connections recorded as closed
        self._failure: AuditWriteError | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ended: AuditRecord | None = None
        self._closing = False

    # -- what the gateway reads ---------------------------------------------------------

    @property
    def session(self) -> str:
        return self.info.session

    @property
    def failure(self) -> AuditWriteError | None:
        """Why recording failed, once it has (the session must then end)."""
        return self._failure

    @property
    def unacked_bytes(self) -> int:
        """Bytes taken by `write` that are not yet durable in the log."""
        return self._unacked + self._coalescer.buffered

    def sizes(self) -> dict[Stream, int]:
        """Bytes recorded so far per stream."""
        return dict(self._sizes)

    def idle_for(self) -> float:
        """Seconds since the last byte in either direction (or since the start)."""
        return (self._clock.now() - self._last_activity).total_seconds()

    # -- recording ----------------------------------------------------------------------

    async def start(self) -> AuditRecord:
        """Write `session.started` and return it once durable; starts the chunk ticker.
        Raises `AuditWriteError` when it cannot be written: the session must not open."""
        self._started = self._last_activity = self._clock.now()
        record = await self._writer.submit(self.info.event(self._started))
        if self._sleep is not None and self._coalescer.policy.max_delay_ms > 0:
            self._ticker = asyncio.create_task(
                self._tick(self._sleep), name=f"session-recorder-{self.session}"
            )
        return record

    async def write(self, stream: Stream, data: bytes) -> None:
        """Take bytes seen on `stream` now. Returns once they are within the memory bound;
        raises `RecordingFailed` once recording has failed."""
        self._check()
        if not data:
            return
        limit = self._max_session_bytes
        if limit is not None and sum(self._sizes.values()) + len(data) > limit:
            self._limit = RecordingLimit(limit)
            raise self._limit
        self._last_activity = self._clock.now()
        self._sizes[stream] += len(data)
        self._submit(self._coalescer.add(stream, self.offset_ms(), data))
        await self._within_bound()

    async def resize(self, width: int, height: int) -> None:
        self._check()
        self._submit(self._coalescer.due(self.offset_ms()))
        event = resize_event(self.session, self._clock.now(), self.offset_ms(), width, height)
        self._track(self._writer.submit(event), 0)
        await self._within_bound()

    def offset_ms(self) -> int:
        """Milliseconds since the session started, by the recorder's clock."""
        elapsed = self._clock.now() - self._started
        return max(int(elapsed.total_seconds() * 1000), 0)

    async def connections(self, changes: Sequence[ForwardedConnection]) -> None:
        """Port-forward connections opened or closed (`session.connection`; their bytes are
        counted, not recorded), queued in the order given before anything else can be."""
        self._check()
        self._last_activity = self._clock.now()
        for change in changes:
            self._track(self._writer.submit(change.event(self.session, self._clock.now())), 0)
            if change.ended is not None:
                self._connections += 1
        await self._within_bound()

    async def flush_due(self) -> None:
        """Close the chunks whose first byte is `max_delay_ms` old (the ticker calls this)."""
        self._check()
        self._submit(self._coalescer.due(self.offset_ms()))
        await self._within_bound()

    async def durable(self) -> None:
        """Wait until every closed chunk and resize is durable (open chunks stay open);
        raises `RecordingFailed` if one could not be written."""
        while self._in_flight:
            await self._settle_oldest()
        self._check()

    async def end(self, ending: Ending) -> AuditRecord:
        """Record what is left and how the session ended; returns the end record once it and
        every chunk are durable. Idempotent: a second call returns the first end record."""
        if self._ended is not None:
            return self._ended
        self._closing = True
        await self._stop_ticker()
        if self._failure is None:
            self._submit(self._coalescer.drain())
        while self._in_flight:
            await self._settle_oldest()
        event = end_event(
            self.session,
            self._clock.now(),
            ending,
            offset_ms=self.offset_ms(),
            chunks=self._coalescer.closed,
            sizes=self._sizes,
            connections=self._connections if self.info.kind == "portforward" else None,
        )
        # Said even after a failure: the log may be writable again, and then the reader sees
        # the session end for its real reason, with totals the stored chunks fall short of.
        self._ended = await self._writer.submit(event)
        return self._ended

    # -- inside -------------------------------------------------------------------------

    def _check(self) -> None:
        if self._limit is not None:
            raise self._limit
        if self._failure is not None:
            raise RecordingFailed(
                f"session {self.session} cannot be recorded: {self._failure}"
            ) from self._failure
        if self._closing:
            raise RecordingFailed(f"session {self.session} has ended")

    def _submit(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            event = chunk.event(self.session, self._clock.now())
            self._track(self._writer.submit(event), len(chunk.data))

    def _track(self, future: asyncio.Future[AuditRecord], size: int) -> None:
        # Forget what is already durable, so the queue stays as short as the log is behind.
        while self._in_flight and self._in_flight[0][0].done():
            self._unacked -= self._in_flight.popleft()[1]
        self._in_flight.append((future, size))
        self._unacked += size
        future.add_done_callback(self._settled)

    def _settled(self, future: asyncio.Future[AuditRecord]) -> None:
        if future.cancelled():
            error: BaseException | None = AuditWriteError("the append was cancelled")
        else:
            error = future.exception()
        if error is not None and self._failure is None:
            self._failure = (
                error
                if isinstance(error, AuditWriteError)
                else AuditWriteError(f"cannot append: {error}")
            )
            logger.error("Session %s cannot be recorded: %s", self.session, self._failure)

    async def _settle_oldest(self) -> None:
        future, size = self._in_flight[0]
        try:
            await asyncio.shield(future)
        except Exception:  # noted by _settled; the caller decides what a failure means
            pass
        finally:
            if self._in_flight and self._in_flight[0][0] is future:
                self._in_flight.popleft()
                self._unacked -= size

    async def _within_bound(self) -> None:
        while self._unacked > self._max_unacked and self._in_flight:
            await self._settle_oldest()
        self._check()

    async def _tick(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        interval = self._coalescer.policy.max_delay_ms / 1000
        while self._failure is None:
            await sleep(interval)
            try:
                await self.flush_due()
            except (RecordingFailed, RecordingLimit):
                return

    async def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
