"""Reading a file audit log: for verification (everything, as stored) and for queries."""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.audit import filelayout as layout
from jitgate.audit.chain import SEALED
from jitgate.audit.errors import AuditDataError, AuditReadError
from jitgate.audit.filecheckpoints import read_checkpoint, read_history
from jitgate.audit.pruning import Anchor, anchors_of
from jitgate.audit.query import Selection
from jitgate.audit.reader import StoredRecord
from jitgate.audit.url import FileTarget
from jitgate.audit.verify import Entry, Item, SegmentEnd, Witness
from jitgate.core.clock import parse_time


def _parse(where: str, line: bytes) -> Entry:
    torn = not line.endswith(b"\n")
    try:
        data = json.loads(line)
    except ValueError:
        return Entry(where, None, "not valid JSON", torn)
    if not isinstance(data, dict):
        return Entry(where, None, "not a JSON object", torn)
    return Entry(where, data, None, torn, line if torn else line[:-1])


def _oserror(what: str, error: OSError) -> AuditReadError:
    return AuditReadError(f"cannot read {what}: {error.strerror or error}")


class FileLogReader:
    def __init__(self, target: FileTarget) -> None:
        self._root = target.root
        self.description = target.describe()
        if not self._root.exists():
            raise AuditReadError(f"the audit directory {self._root} does not exist")
        if not self._root.is_dir():
            raise AuditReadError(f"the audit location {self._root} is not a directory")

    def close(self) -> None:
        pass

    # -- layout -------------------------------------------------------------------------

    def writers(self) -> list[str]:
        try:
            writers, strays = layout.list_writers(self._root)
        except OSError as error:
            raise _oserror(f"the audit directory {self._root}", error) from error
        if strays:
            raise AuditReadError(
                f"{strays[0]} is not part of the audit log: only writer directories "
                f"belong in {self._root}"
            )
        return writers

    def _segments(self, writer: str) -> list[layout.SegmentFile]:
        directory = self._root / writer
        try:
            segments, strays = layout.list_segments(directory)
        except OSError as error:
            raise _oserror(f"the audit directory {directory}", error) from error
        if strays:
            raise AuditReadError(
                f"{strays[0]} is not an audit segment: only <seq>.jsonl segments, HEAD, .lock, "
                f"CHECKPOINT, CHECKPOINTS, TREE and PRUNED belong in {directory}"
            )
        return segments

    def _lines(
        self, writer: str, segment: layout.SegmentFile, offset: int = 0
    ) -> Iterator[tuple[Entry, int]]:
        """Entries of a segment from `offset`, each with the offset after it."""
        try:
            file = segment.path.open("rb")
        except FileNotFoundError:
            return  # pruned while we were reading
        except OSError as error:
            raise _oserror(str(segment.path), error) from error
        with file:
            start = offset
            if start:
                file.seek(start)
            for number, line in enumerate(file, 1):
                where = f"{writer}/{segment.name} " + (
                    f"byte {offset}" if start else f"line {number}"
                )
                offset += len(line)
                yield _parse(where, line), offset

    # -- verification -------------------------------------------------------------------

    def chain(self, writer: str) -> Iterator[Item]:
        segments = self._segments(writer)
        for index, segment in enumerate(segments):
            for entry, _ in self._lines(writer, segment):
                yield entry
            yield SegmentEnd(f"{writer}/{segment.name}", last=index == len(segments) - 1)

    def witnesses(self, writer: str) -> tuple[list[Witness], list[str]]:
        path = self._root / writer / layout.HEAD_FILE
        try:
            if path.stat().st_size == 0:
                return [], []
        except FileNotFoundError:
            return [], []
        except OSError as error:
            raise _oserror(str(path), error) from error
        head = layout.read_head(path)
        if (
            head is None
            or type(head.get("seq")) is not int
            or not isinstance(head.get("hash"), str)
        ):
            return [], [f"the head file {writer}/{layout.HEAD_FILE} is unreadable and was ignored"]
        return [Witness(head["seq"], head["hash"], f"head file {writer}/{layout.HEAD_FILE}")], []

    def is_live(self, writer: str) -> bool:
        return layout.is_locked(self._root / writer / layout.LOCK_FILE)

    def checkpoint(self, writer: str) -> bytes | None:
        try:
            return read_checkpoint(self._root / writer)
        except OSError as error:
            raise _oserror(f"the checkpoint of writer {writer}", error) from error

    def checkpoint_history(self, writer: str) -> list[bytes]:
        try:
            return read_history(self._root / writer)
        except OSError as error:
            raise _oserror(f"the checkpoint history of writer {writer}", error) from error

    def pruning_records(self) -> list[Mapping[str, Any]]:
        return []  # each writer prunes its own segments, saying so in its own chain

    def pruned_prefixes(self, writer: str) -> list[Anchor]:
        try:
            records = read_pruned(self._root / writer)
        except OSError as error:
            raise _oserror(f"the pruning records of writer {writer}", error) from error
        return [a for r in records for a in anchors_of(r) if a.writer == writer]

    # -- queries ------------------------------------------------------------------------

    def _stored(
        self, writer: str, segment: layout.SegmentFile, last: bool
    ) -> Iterator[StoredRecord]:
        for entry, _ in self._lines(writer, segment):
            if entry.torn and last:
                return  # a record being written, or the remains of a crash the writer will cut
            if entry.record is None:
                raise AuditDataError(
                    f"the line at {entry.where} is {entry.error}; run `jitgate audit verify`"
                )
            yield StoredRecord(entry.where, entry.record)

    def _writer_records(self, writer: str, selection: Selection) -> Iterator[StoredRecord]:
        segments = self._segments(writer)
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if not last and selection.since is not None and _ends_before(segment, selection):
                continue
            for stored in self._stored(writer, segment, last):
                if selection.until is not None and stored.record.when >= selection.until:
                    return  # records of one writer are in time order
                if selection.matches(stored.record):
                    yield stored

    def _selected_writers(self, selection: Selection) -> list[str]:
        return [w for w in self.writers() if not selection.writers or w in selection.writers]

    def records(self, selection: Selection) -> Iterator[StoredRecord]:
        streams = [self._writer_records(w, selection) for w in self._selected_writers(selection)]
        return heapq.merge(*streams, key=lambda stored: stored.order)

    def latest(self, selection: Selection, count: int) -> list[StoredRecord]:
        found: list[StoredRecord] = []
        for writer in self._selected_writers(selection):
            segments = self._segments(writer)
            mine: list[StoredRecord] = []
            for index in range(len(segments) - 1, -1, -1):
                last = index == len(segments) - 1
                matches = [
                    stored
                    for stored in self._stored(writer, segments[index], last)
                    if selection.matches(stored.record)
                ]
                mine[:0] = matches
                if len(mine) >= count:
                    break
            found.extend(mine[-count:] if count else [])
        found.sort(key=lambda stored: stored.order)
        return found[-count:] if count else []

    def follow(self, selection: Selection) -> _FileFollower:
        return _FileFollower(self, selection)


def read_pruned(writer_dir: Path) -> list[dict[str, Any]]:
    """The copies of pruning records a writer kept in PRUNED ([] if it never pruned)."""
    try:
        lines = (writer_dir / layout.PRUNED_FILE).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    return [record for line in lines if (record := layout.parse_record(line)) is not None]


def _ends_before(segment: layout.SegmentFile, selection: Selection) -> bool:
    """A sealed segment whose seal predates `since` holds nothing selected."""
    assert selection.since is not None
    seal = layout.parse_record(layout.tail(segment.path)[1])
    if seal is None or seal.get("type") != SEALED:
        return False
    try:
        return parse_time(str(seal.get("time"))) < selection.since
    except ValueError:
        return False


@dataclass
class _Position:
    first_seq: int
    offset: int


class _FileFollower:
    """Remembers how far each writer's newest segment has been read."""

    def __init__(self, reader: FileLogReader, selection: Selection) -> None:
        self._reader = reader
        self._selection = selection
        self._positions: dict[str, _Position] = {}
        for writer in reader._selected_writers(selection):
            segments = reader._segments(writer)
            if segments:
                end = os.stat(segments[-1].path).st_size
                self._positions[writer] = _Position(segments[-1].first_seq, end)

    def poll(self) -> list[StoredRecord]:
        found: list[StoredRecord] = []
        for writer in self._reader._selected_writers(self._selection):
            position = self._positions.setdefault(writer, _Position(0, 0))
            for segment in self._reader._segments(writer):
                if segment.first_seq < position.first_seq:
                    continue
                if segment.first_seq > position.first_seq:
                    position.first_seq, position.offset = segment.first_seq, 0
                for entry, offset in self._reader._lines(writer, segment, position.offset):
                    if entry.torn:
                        break  # not complete yet; read it next time
                    position.offset = offset
                    if entry.record is None:
                        raise AuditDataError(
                            f"a line in {entry.where} is {entry.error}; run `jitgate audit verify`"
                        )
                    stored = StoredRecord(entry.where, entry.record)
                    if self._selection.matches(stored.record):
                        found.append(stored)
        found.sort(key=lambda stored: stored.order)
        return found
