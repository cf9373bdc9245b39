"""The file sink: per-writer segment files on a local volume.

Blocking file work runs on one dedicated thread per writer, so fsyncs never queue
behind other users of the default executor, and happen in order. With `append_process` (the
webhook's writer) the batches of `PROCESS_BATCH` records or more that the writer hands off
(`write_soon`: a busy event loop) are written and synced by a process of its own instead
(`appendproc`): a thread would contend for the loop's GIL after each of its system calls.
Everything else (a lone record, opening, a new segment, seals, taking a failed write back,
pruning) stays on the thread, one at a time with the batches: the writer never has two
writes under way.

Retention deletes whole sealed segments past their age, once a pruning record saying so
is durable in the chain. The records pruned must verify as a chain from where the log
starts, and the record carries the pruned prefix's Merkle tree state (`pruning`), so the
records kept still prove against the writer's signed checkpoints. A copy of it is kept
in PRUNED, where readers find it without reading the segments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from jitgate.audit import filelayout as layout
from jitgate.audit.appendproc import Appender
from jitgate.audit.chain import PRUNED, SEALED, ChainHead, Linked
from jitgate.audit.errors import AuditReadError, AuditWriteError
from jitgate.audit.filereader import FileLogReader, read_pruned
from jitgate.audit.iothread import IoThread
from jitgate.audit.pruning import Anchor, anchors_of, pruned_prefix
from jitgate.audit.sink import PrunePlan, SinkState
from jitgate.audit.tlog import tree_state
from jitgate.audit.url import FileTarget
from jitgate.core.clock import SYSTEM_CLOCK, Clock, parse_time

logger = logging.getLogger("jitgate.audit")
T = TypeVar("T")

_FILE_MODE = 0o640
# The smallest batch handed to the append process. A lone record means one append in flight:
# the event loop is waiting too, so the thread gets the GIL at once, and it answers sooner
# than a process woken for it (the tier's exec admission, one at a time: a lower p99). Two or
# more mean a busy loop, whose GIL the thread would wait for after each of its system calls.
PROCESS_BATCH = 2
_DIR_MODE = 0o750


@dataclass
class _Active:
    """The segment being appended to."""

    path: Path
    fd: int
    first_seq: int
    size: int
    started: dt.datetime


@dataclass(frozen=True)
class _Acknowledged:
    """Where the log ended after the last successful write: what a failed one is cut to."""

    seq: int  # of the last record stored, 0 if none
    segment: Path | None  # the segment holding it
    size: int  # that segment's size just after it
    witness: bytes  # the HEAD file's content then


class FileSink:
    def __init__(
        self,
        target: FileTarget,
        writer_id: str,
        clock: Clock = SYSTEM_CLOCK,
        *,
        append_process: bool = False,
    ) -> None:
        self._target = target
        self._clock = clock
        self._writer = layout.check_writer_id(writer_id)
        self._dir = target.root / writer_id
        self.description = f"{target.describe()} (writer {writer_id})"
        self._thread = IoThread(f"audit-{writer_id}")
        # Makes the batches the writer hands off durable (`write_soon`), without the thread.
        self._append_process = append_process
        self._appender: Appender | None = None
        self._lock_fd: int | None = None
        self._head_fd: int | None = None
        self._active: _Active | None = None
        self._acknowledged = _Acknowledged(0, None, 0, b"")

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await self._thread.run(function, *args)

    # -- opening and recovery -------------------------------------------------------

    async def open(self) -> SinkState:
        state = await self._run(self._open)
        await self._start_appender()
        return state

    async def recover(self) -> SinkState:
        state = await self._run(self._recover)
        await self._start_appender()
        return state

    async def discard(self) -> None:
        if self._appender is not None:
            self._appender.forget_segment()
        await self._run(self._discard)

    async def _start_appender(self) -> None:
        """The append process, started (again, if it ended); without one every batch is
        written on the thread, as every other write is."""
        if not self._append_process or (self._appender is not None and self._appender.running):
            return
        if self._head_fd is None or self._lock_fd is None:
            return
        if self._appender is not None:
            await self._appender.aclose()
            self._appender = None
        try:
            self._appender = await Appender.start(self._head_fd, self._lock_fd)
        except OSError as error:
            logger.warning(
                "Audit writer %s appends on a thread: cannot start its append process: %s",
                self._writer,
                error,
            )

    def _open(self) -> SinkState:
        try:
            self._make_dir(self._target.root)
            self._make_dir(self._dir)
            self._lock_fd = os.open(
                self._dir / layout.LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
            if not layout.try_lock(self._lock_fd):
                raise AuditWriteError(
                    f"audit writer {self._writer} is already writing to {self._dir} in another "
                    "process; give each replica its own writer id"
                )
            self._head_fd = os.open(
                self._dir / layout.HEAD_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
            return self._scan()
        except AuditWriteError:
            self._close_all()
            raise
        except OSError as error:
            self._close_all()
            raise AuditWriteError(f"cannot open the {self.description}: {error}") from error

    def _recover(self) -> SinkState:
        self._discard()
        acknowledged = self._acknowledged.seq
        try:
            state = self._scan()
        except OSError as error:
            raise AuditWriteError(f"cannot reopen the {self.description}: {error}") from error
        stored = state.head.seq if state.head else 0
        if stored > acknowledged:  # cut back, yet still there: never chain onto it
            raise AuditWriteError(
                f"the {self.description} still ends at seq {stored} after cutting a failed "
                f"write back to seq {acknowledged}"
            )
        return state

    def _discard(self) -> None:
        """Cut the log back to the end of the last successful write.

        The witness first: a crash before the cut then leaves the failed records as an
        unacknowledged tail (as any crash mid-write does), never as acknowledged ones.
        """
        with contextlib.suppress(OSError):  # a failed write may have closed it already
            self._close_active()
        acknowledged = self._acknowledged
        try:
            if self._head_fd is not None:
                os.pwrite(self._head_fd, acknowledged.witness, 0)
                os.ftruncate(self._head_fd, len(acknowledged.witness))
                os.fsync(self._head_fd)
            segments, _ = layout.list_segments(self._dir)
            later = [s for s in segments if s.first_seq > acknowledged.seq]
            for segment in reversed(later):
                segment.path.unlink()
            if later:
                layout.fsync_dir(self._dir)
            if acknowledged.segment is not None:
                self._cut(acknowledged.segment, acknowledged.size)
        except OSError as error:
            raise AuditWriteError(
                f"cannot take a failed write back out of the {self.description}: "
                f"{error.strerror or error}"
            ) from error

    def _cut(self, path: Path, size: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # acknowledged records are gone too: the scan reports them from the witness
        try:
            if os.fstat(fd).st_size > size:
                os.ftruncate(fd, size)
                os.fsync(fd)
        finally:
            os.close(fd)

    def _make_dir(self, path: Path) -> None:
        if path.is_dir():
            return
        path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        layout.fsync_dir(path.parent)

    def _scan(self) -> SinkState:
        """Find the head; cut a torn last line (never acknowledged) and say so."""
        repaired: dict[str, Any] = {}
        found = self._find_head(repaired)
        head = found[0] if found else None
        try:
            raw = (self._dir / layout.HEAD_FILE).read_bytes()
        except FileNotFoundError:
            raw = b""
        witness = layout.parse_record(raw or None)
        if witness is not None and type(witness.get("seq")) is int:
            stored = head.seq if head else 0
            if witness["seq"] > stored:
                # Acknowledged records are gone. Say so in the chain before carrying on.
                repaired["missing"] = {"from": stored + 1, "to": witness["seq"]}
                repaired["witness"] = witness.get("hash")
                logger.error(
                    "Audit log of writer %s lost records %d-%d that were acknowledged",
                    self._writer,
                    stored + 1,
                    witness["seq"],
                )
        if found is None:
            self._acknowledged = _Acknowledged(0, None, 0, raw)
        else:
            self._acknowledged = _Acknowledged(found[0].seq, found[1], found[2], raw)
        return SinkState(head, repaired or None)

    def _find_head(self, repaired: dict[str, Any]) -> tuple[ChainHead, Path, int] | None:
        """The chain head, the segment holding it and where it ends there."""
        while True:
            segments, _ = layout.list_segments(self._dir)
            if not segments:
                return None
            segment = segments[-1]
            end, line = layout.tail(segment.path)
            size = segment.path.stat().st_size
            if end < size:
                logger.warning(
                    "Audit segment %s ends in an incomplete record (%d bytes) from an "
                    "interrupted write; cutting it off",
                    segment.path,
                    size - end,
                )
                with segment.path.open("r+b") as file:
                    file.truncate(end)
                    os.fsync(file.fileno())
                repaired["truncated"] = {"segment": segment.name, "bytes": size - end}
            if end == 0:
                segment.path.unlink()
                layout.fsync_dir(self._dir)
                continue
            last = layout.parse_record(line)
            if (
                last is None
                or type(last.get("seq")) is not int
                or not isinstance(last.get("hash"), str)
            ):
                raise AuditWriteError(
                    f"cannot continue the chain of writer {self._writer}: the last record of "
                    f"{segment.path} is damaged; run `jitgate audit verify`"
                )
            if last.get("type") != SEALED:
                self._active = self._reopen(segment, end)
            return ChainHead(last["seq"], last["hash"]), segment.path, end

    def _reopen(self, segment: layout.SegmentFile, size: int) -> _Active:
        first = layout.parse_record(layout.first_line(segment.path))
        try:
            started = parse_time(str(first["time"])) if first else None
        except ValueError:
            started = None
        fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        return _Active(segment.path, fd, segment.first_seq, size, started or self._clock.now())

    # -- writing ------------------------------------------------------------------------

    async def write(self, records: Sequence[Linked], *, end_segment: bool = False) -> None:
        try:
            await self._run(self._write, records, end_segment)
        except OSError as error:
            raise self._write_error(error) from error

    def write_soon(
        self, records: Sequence[Linked], then: Callable[[Exception | None], None]
    ) -> None:
        """`write(records)` on the sink's thread, its outcome handed to `then`
        (`sink.HandsOffWrites`)."""

        def outcome(_result: None, error: BaseException | None) -> None:
            if error is None:
                then(None)
            elif isinstance(error, OSError):
                failure = self._write_error(error)
                failure.__cause__ = error
                then(failure)
            elif isinstance(error, Exception):
                then(error)
            else:  # never leave the writer waiting, whatever ended the call
                then(AuditWriteError(f"writing to the {self.description} ended: {error!r}"))

        active, appender = self._active, self._appender
        if active is None or appender is None or len(records) < PROCESS_BATCH:
            # A new segment is created (and synced, with its directory) on the thread; an
            # append process that ended fails the batch (`Appender.append`), and the
            # writer's recovery starts another.
            self._thread.run_then(outcome, self._write, records, False)
            return
        data, seq, witness = self._encoded(records)

        def appended(error: OSError | None) -> None:
            if error is None:
                self._appended(active, len(data), seq, witness)
            outcome(None, error)

        appender.append(bytes(active.path), data, witness, appended)

    def _write_error(self, error: OSError) -> AuditWriteError:
        return AuditWriteError(f"cannot write to the {self.description}: {error.strerror or error}")

    def _write(self, records: Sequence[Linked], end_segment: bool) -> None:
        if not records:
            return
        active = self._active or self._create(records[0])
        data, seq, witness = self._encoded(records)
        view = memoryview(data)
        while view:
            written = os.write(active.fd, view)
            view = view[written:]
        os.fdatasync(active.fd)
        if self._head_fd is not None:
            os.pwrite(self._head_fd, witness, 0)
        if end_segment:
            self._close_active()
        self._appended(active, len(data), seq, witness)

    def _encoded(self, records: Sequence[Linked]) -> tuple[bytes, int, bytes]:
        """A batch as it is appended: its lines, its last seq, and the HEAD witness naming it."""
        data = b"".join(record.line for record in records)
        last = records[-1].record
        witness = layout.encode_head(self._writer, last["seq"], last["hash"], last["time"])
        return data, last["seq"], witness

    def _appended(self, active: _Active, size: int, seq: int, witness: bytes) -> None:
        """`size` bytes ending with record `seq` are durable in `active`: what a failed write
        after them is cut back to (`_discard`)."""
        active.size += size
        self._acknowledged = _Acknowledged(seq, active.path, active.size, witness)

    def _create(self, first: Linked) -> _Active:
        path = self._dir / layout.segment_name(first.seq)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, _FILE_MODE
        )
        try:
            # The new name must survive a crash as surely as the records written into it.
            os.fsync(fd)
            layout.fsync_dir(self._dir)
        except OSError:
            os.close(fd)  # the file itself goes with the failed write (`discard`)
            raise
        # Aged by the clock, not by record times: callers may hand in events from the past.
        self._active = _Active(path, fd, first.seq, 0, self._clock.now())
        return self._active

    def rotation_due(self, now: dt.datetime) -> Mapping[str, Any] | None:
        active = self._active
        if active is None or active.size == 0:
            return None
        if (
            active.size < self._target.segment_size
            and now - active.started < self._target.segment_age
        ):
            return None
        return {"segment": active.path.name, "firstSeq": active.first_seq}

    # -- retention ----------------------------------------------------------------------

    async def prune_plan(self, now: dt.datetime) -> PrunePlan | None:
        return await self._run(self._prune_plan, now)

    def _held(self) -> bool:
        return self._target.legal_hold or (self._target.root / layout.HOLD_FILE).exists()

    def _prune_plan(self, now: dt.datetime) -> PrunePlan | None:
        retention = self._target.retention
        if retention is None:
            return None
        if self._held():
            logger.info("Audit log %s is under legal hold; nothing is pruned", self._target.root)
            return None
        cutoff = now - retention
        segments, _ = layout.list_segments(self._dir)
        expired: list[tuple[layout.SegmentFile, dict[str, Any]]] = []
        for segment in segments:
            if self._active is not None and segment.path == self._active.path:
                break
            seal = layout.parse_record(layout.tail(segment.path)[1])
            if seal is None or seal.get("type") != SEALED:
                break
            try:
                if parse_time(str(seal["time"])) >= cutoff:
                    break
            except ValueError:
                break
            expired.append((segment, seal))
        if not expired:
            return None
        first, last = expired[0][0].first_seq, expired[-1][1]["seq"]
        try:
            anchor = pruned_prefix(
                self._writer,
                FileLogReader(self._target).chain(self._writer),
                last,
                self._start(first, segments[0]),
            )
        except (ValueError, AuditReadError) as error:
            # Deleting records that do not check out would delete the evidence: keep them.
            logger.error(
                "Audit log of writer %s keeps segments past retention: its records to prune "
                "(seq %d-%d) do not verify: %s; run `jitgate audit verify`",
                self._writer,
                first,
                last,
                error,
            )
            return None
        context: dict[str, Any] = {
            "segments": [segment.name for segment, _ in expired],
            "firstSeq": first,
            "lastSeq": last,
            "resumeSeq": anchor.resume_seq,
            "resumePrev": anchor.resume_prev,
            "retentionSeconds": int(retention.total_seconds()),
        }
        if anchor.tree is not None:
            context["tree"] = tree_state(anchor.tree)
        return PrunePlan(context, tuple(str(segment.path) for segment, _ in expired))

    def _start(self, first: int, segment: layout.SegmentFile) -> Anchor | None:
        """What accounts for where the log starts now (None: at seq 1)."""
        if first == 1:
            return None
        for record in read_pruned(self._dir):
            for anchor in anchors_of(record):
                if anchor.writer == self._writer and anchor.resume_seq == first:
                    return anchor
        # Pruned by a jitgate that kept no copy: its pruning record is in the chain, where
        # `verify` checks it; the tree state of the prefix is unknown.
        oldest = layout.parse_record(layout.first_line(segment.path))
        prev = oldest.get("prev") if oldest else None
        return Anchor(self._writer, first, prev, None, "") if isinstance(prev, str) else None

    async def prune(self, plan: PrunePlan, seq: int) -> None:
        await self._run(self._prune, plan, seq)

    def _prune(self, plan: PrunePlan, seq: int) -> None:
        self._save_pruned(plan, seq)
        for victim in plan.victims:
            Path(victim).unlink(missing_ok=True)
        layout.fsync_dir(self._dir)

    def _save_pruned(self, plan: PrunePlan, seq: int) -> None:
        """Replace PRUNED with this pruning record and the one for where the log starts
        until the segments are gone (a crash in between leaves that start)."""
        start = plan.context["firstSeq"]
        kept = [
            record
            for record in read_pruned(self._dir)
            if any(a.resume_seq >= start for a in anchors_of(record))
        ]
        kept.append({"type": PRUNED, "writer": self._writer, "seq": seq, "context": plan.context})
        data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in kept)
        path = self._dir / layout.PRUNED_FILE
        aside = path.with_name(path.name + layout.TEMPORARY_SUFFIX)
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(aside, path)
        layout.fsync_dir(self._dir)

    # -- closing ------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._appender is not None:
            await self._appender.aclose()
            self._appender = None
        await self._run(self._close_all)
        self._thread.shutdown()

    def _close_active(self) -> None:
        active, self._active = self._active, None
        if active is not None:
            os.close(active.fd)

    def _close_all(self) -> None:
        self._close_active()
        for fd in (self._head_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._head_fd = self._lock_fd = None
