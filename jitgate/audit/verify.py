"""Chain verification: find the first broken record of a writer and say how it broke.

Pure: it is fed what a reader found (entries in storage order, segment boundaries, head
witnesses) and judges it. Classifying a break needs a little look-ahead (a reordered
record shows up later), so the stream is buffered a few dozen entries ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

from jitgate.audit.chain import (
    GENESIS,
    PRUNED,
    RECOVERED,
    SEALED,
    ChainHead,
    hash_and_stored_form,
    mac_matches,
)
from jitgate.audit.merkle import leaf_hash

ProblemKind = Literal[
    "edited", "deleted", "inserted", "reordered", "truncated", "bad-mac", "corrupt", "wrong-key"
]
LOOKAHEAD: Final = 64
# Enough to recognise a replayed record from the recent past without holding the whole log.
RECENT: Final = 10_000


class Entry(NamedTuple):
    """One stored record as read: `record` is None when the line is not a JSON object.

    A named tuple, as `_Link`: one is made per record, and `verify` reads many thousands
    a second.

    `line` is the record's stored line without its newline, where storage has one (files):
    the chain's hash and the Merkle leaf are then taken from it without encoding again.
    """

    where: str
    record: Mapping[str, Any] | None
    error: str | None = None
    torn: bool = False
    line: bytes | None = None


@dataclass(frozen=True)
class SegmentEnd:
    """The end of a segment file; every segment but the last must end with a seal record."""

    name: str
    last: bool


Item = Entry | SegmentEnd


@dataclass(frozen=True)
class Witness:
    """A record the chain must contain, e.g. the writer's HEAD file or a saved head."""

    seq: int
    hash: str
    source: str


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    where: str
    message: str


@dataclass(frozen=True)
class ChainReport:
    writer: str
    records: int
    first_seq: int | None
    head: ChainHead | None
    problem: Problem | None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Link(NamedTuple):
    seq: int
    prev: str
    hash: str
    where: str


def _link_of(entry: Entry) -> _Link | None:
    record = entry.record
    if record is None:
        return None
    seq, prev, hash_ = record.get("seq"), record.get("prev"), record.get("hash")
    if type(seq) is not int or not isinstance(prev, str) or not isinstance(hash_, str):
        return None
    return _Link(seq, prev, hash_, entry.where)


class _Lookahead:
    def __init__(self, items: Iterable[Item]) -> None:
        self._items: Iterator[Item] = iter(items)
        self._buffer: deque[Item] = deque()

    def next(self) -> Item | None:
        if self._buffer:
            return self._buffer.popleft()
        return next(self._items, None)

    def entries(self, limit: int = LOOKAHEAD) -> list[Entry]:
        """The next `limit` entries, without consuming them."""
        found = [item for item in self._buffer if isinstance(item, Entry)]
        while len(found) < limit:
            item = next(self._items, None)
            if item is None:
                break
            self._buffer.append(item)
            if isinstance(item, Entry):
                found.append(item)
        return found[:limit]

    def links(self, limit: int = LOOKAHEAD) -> list[_Link]:
        return [link for link in map(_link_of, self.entries(limit)) if link is not None]


@dataclass
class _Segment:
    records: int = 0
    sealed_at: str | None = None


@dataclass
class _State:
    records: int = 0
    last: _Link | None = None
    start: _Link | None = None
    recent: dict[int, str] = field(default_factory=dict)  # the last RECENT..2*RECENT
    anchors: set[tuple[int, str]] = field(default_factory=set)
    segment: _Segment = field(default_factory=_Segment)
    macs_ok: int = 0
    macs_seen: bool = False
    mac_failure: Problem | None = None
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)


def _missing(context: object) -> str | None:
    repaired = context.get("repaired") if isinstance(context, Mapping) else None
    missing = repaired.get("missing") if isinstance(repaired, Mapping) else None
    if isinstance(missing, Mapping):
        return f"seq {missing.get('from')}-{missing.get('to')}"
    return None


def _unacknowledged(context: object) -> str | None:
    span = context.get("unacknowledged") if isinstance(context, Mapping) else None
    if isinstance(span, Mapping):
        return f"seq {span.get('from')}-{span.get('to')}"
    return None


def _span(first: int, last: int) -> str:
    return f"record seq {first} was" if first == last else f"records seq {first}-{last} were"


class _Verifier:
    def __init__(
        self,
        writer: str,
        items: Iterable[Item],
        key: bytes | None,
        witnesses: Sequence[Witness],
        live: bool,
        on_record: Callable[[int, bytes | None], None] | None,
        anchors: Iterable[tuple[int, str]],
    ) -> None:
        self.writer = writer
        self.stream = _Lookahead(items)
        self.key = key
        self.witnesses = witnesses
        self.witnesses_at: dict[int, list[Witness]] = {}
        for witness in witnesses:
            self.witnesses_at.setdefault(witness.seq, []).append(witness)
        self.live = live
        self.on_record = on_record
        self.s = _State(anchors=set(anchors))

    def run(self) -> ChainReport:
        s = self.s
        while s.problem is None and (item := self.stream.next()) is not None:
            if isinstance(item, SegmentEnd):
                self._segment_end(item)
            elif s.mac_failure is not None:
                self._only_mac(item)
            else:
                self._entry(item)
        if s.problem is None:
            self._finish()
        return ChainReport(
            writer=self.writer,
            records=s.records,
            first_seq=s.start.seq if s.start else None,
            head=ChainHead(s.last.seq, s.last.hash) if s.last else None,
            problem=s.problem,
            notes=tuple(s.notes),
        )

    def _fail(self, kind: ProblemKind, where: str, message: str) -> None:
        self.s.problem = Problem(kind, where, message)

    # -- one entry ---------------------------------------------------------------------

    def _entry(self, entry: Entry) -> None:
        record = entry.record
        if entry.torn:
            if self.live and not self.stream.entries(1):
                self.s.notes.append(f"the last line of {entry.where} is still being written")
                return
            self._fail(
                "truncated",
                entry.where,
                f"the log was truncated: {entry.where} is incomplete, "
                "cut off in the middle of a record",
            )
            return
        if record is None:
            self._fail(
                "corrupt",
                entry.where,
                f"the line at {entry.where} is not an audit record ({entry.error}); "
                "it was edited or damaged",
            )
            return
        link = _link_of(entry)
        if link is None or link.seq < 1 or not isinstance(record.get("writer"), str):
            self._fail(
                "corrupt",
                entry.where,
                f"the record at {entry.where} lacks a valid writer, seq, prev or hash; "
                "it was edited or damaged",
            )
            return
        if entry.error:
            self._fail(
                "edited", entry.where, f"the record at {entry.where} was edited: {entry.error}"
            )
            return
        computed, stored = hash_and_stored_form(record, entry.line)
        if computed != link.hash:
            self._fail(
                "edited",
                entry.where,
                f"record seq {link.seq} at {entry.where} was edited: "
                "its content no longer matches its hash",
            )
            return
        if record["writer"] != self.writer:
            self._fail(
                "inserted",
                entry.where,
                f"the record at {entry.where} was inserted: it belongs to writer "
                f"{record['writer']!r}, not {self.writer!r}",
            )
            return
        if not self._linked(link):
            return
        if self.s.segment.sealed_at is not None:
            self._fail(
                "inserted",
                entry.where,
                f"the record at {entry.where} was inserted: it follows the seal record "
                f"of its segment ({self.s.segment.sealed_at})",
            )
            return
        if self.key is not None and not self._mac(record, link):
            return
        self._accept(record, link, stored)

    def _linked(self, link: _Link) -> bool:
        """Check `link` continues the chain; on a break, record what kind of break it is."""
        s = self.s
        if s.last is None:
            return self._first(link)
        expected = s.last.seq + 1
        if link.seq == expected and link.prev == s.last.hash:
            return True
        self._classify(link, s.last, expected)
        return False

    def _first(self, link: _Link) -> bool:
        if link.seq == 1:
            if link.prev != GENESIS:
                self._fail(
                    "edited",
                    link.where,
                    f"record seq 1 at {link.where} was edited: the first record of a chain "
                    "must link to the genesis hash",
                )
                return False
            return True
        earlier = [ahead for ahead in self.stream.links() if ahead.seq < link.seq]
        if earlier:
            self._fail(
                "reordered",
                link.where,
                f"records were reordered: seq {link.seq} at {link.where} comes before "
                f"seq {earlier[0].seq} at {earlier[0].where}",
            )
            return False
        return True  # pruned: the start is checked against pruning records at the end

    def _classify(self, link: _Link, last: _Link, expected: int) -> None:
        ahead = self.stream.links()
        if link.seq == expected:
            if ahead and ahead[0].seq == expected and ahead[0].prev == last.hash:
                self._fail(
                    "inserted",
                    link.where,
                    f"the record at {link.where} was inserted: it claims seq {link.seq} but "
                    f"does not link to seq {last.seq}; the record at {ahead[0].where} does",
                )
            else:
                self._fail(
                    "edited",
                    link.where,
                    f"the chain breaks at seq {link.seq} ({link.where}): it does not link to "
                    f"seq {last.seq} ({last.where}), so a record was edited and its hash "
                    "recomputed",
                )
        elif link.seq > expected:
            moved = next((a for a in ahead if a.seq == expected), None)
            if moved is not None:
                self._fail(
                    "reordered",
                    link.where,
                    f"records were reordered: seq {link.seq} at {link.where} comes before "
                    f"seq {expected} at {moved.where}",
                )
            elif link.prev == last.hash:
                self._fail(
                    "edited",
                    link.where,
                    f"record seq {link.seq} at {link.where} was edited: it links to "
                    f"seq {last.seq} but its seq was changed and its hash recomputed",
                )
            else:
                self._fail(
                    "deleted",
                    link.where,
                    f"{_span(expected, link.seq - 1)} deleted: the chain jumps from "
                    f"seq {last.seq} ({last.where}) to seq {link.seq} at {link.where}",
                )
        elif self.s.recent.get(link.seq) == link.hash:
            self._fail(
                "inserted",
                link.where,
                f"the record at {link.where} was inserted: it is a copy of seq {link.seq}",
            )
        elif link.seq == last.seq and link.prev == self._prev_of_last():
            if ahead and ahead[0].prev == link.hash:
                self._fail(
                    "inserted",
                    last.where,
                    f"the record at {last.where} was inserted: it claims seq {last.seq}, "
                    f"and the chain continues from the record at {link.where} instead",
                )
            else:
                self._fail(
                    "inserted",
                    link.where,
                    f"the record at {link.where} was inserted: it repeats seq {link.seq} "
                    f"of {last.where} with different content",
                )
        else:
            self._fail(
                "inserted",
                link.where,
                f"the record at {link.where} was inserted: seq {link.seq} already appeared "
                f"earlier in the chain, which had reached seq {last.seq}",
            )

    def _prev_of_last(self) -> str | None:
        last = self.s.last
        if last is None:
            return None
        if last.seq == 1:
            return GENESIS
        return self.s.recent.get(last.seq - 1)

    def _mac(self, record: Mapping[str, Any], link: _Link) -> bool:
        assert self.key is not None
        s = self.s
        s.macs_seen = s.macs_seen or "mac" in record
        if mac_matches(link.hash, record.get("mac"), self.key):
            s.macs_ok += 1
            return True
        ahead = self.stream.links(1)
        if ahead and ahead[0].seq == link.seq and ahead[0].prev == link.prev:
            problem = Problem(
                "inserted",
                link.where,
                f"the record at {link.where} was inserted: it claims seq {link.seq} without "
                f"a valid MAC, and the record at {ahead[0].where} holds that place",
            )
        elif "mac" not in record:
            problem = Problem(
                "bad-mac",
                link.where,
                f"record seq {link.seq} at {link.where} has no MAC although the log is signed",
            )
        else:
            problem = Problem(
                "bad-mac",
                link.where,
                f"record seq {link.seq} at {link.where} has a bad MAC: it was changed by "
                "someone without the key",
            )
        if s.macs_ok:
            s.problem = problem
        else:
            # Either tampering or the wrong key: tell them apart by whether any MAC verifies.
            s.mac_failure = problem
        return False

    def _only_mac(self, entry: Entry) -> None:
        assert self.key is not None
        link = _link_of(entry)
        if entry.record is not None and "mac" in entry.record:
            self.s.macs_seen = True
        if (
            link is not None
            and entry.record is not None
            and mac_matches(link.hash, entry.record.get("mac"), self.key)
        ):
            self.s.problem = self.s.mac_failure

    def _accept(self, record: Mapping[str, Any], link: _Link, stored: bytes | None) -> None:
        s = self.s
        if s.start is None:
            s.start = link
        s.records += 1
        s.segment.records += 1
        s.last = link
        s.recent[link.seq] = link.hash
        if len(s.recent) >= 2 * RECENT:  # forget the older half at once, not one a record
            s.recent = dict(list(s.recent.items())[-RECENT:])
        kind = record.get("type")
        if kind == SEALED:
            s.segment.sealed_at = link.where
        elif kind == RECOVERED:
            missing = _missing(record.get("context"))
            if missing:
                s.notes.append(
                    f"writer {self.writer} recorded at seq {link.seq} ({link.where}) that "
                    f"acknowledged records {missing} were missing when it restarted"
                )
            unacknowledged = _unacknowledged(record.get("context"))
            if unacknowledged:
                s.notes.append(
                    f"writer {self.writer} recorded at seq {link.seq} ({link.where}) that "
                    f"records {unacknowledged} were stored by a write that failed: they were "
                    "never acknowledged, so what they record did not happen"
                )
        elif kind == PRUNED:
            context = record.get("context")
            if isinstance(context, Mapping):
                resume_seq, resume_prev = context.get("resumeSeq"), context.get("resumePrev")
                if type(resume_seq) is int and isinstance(resume_prev, str):
                    s.anchors.add((resume_seq, resume_prev))
        for witness in self.witnesses_at.get(link.seq, ()):
            if witness.hash != link.hash:
                self._fail(
                    "edited",
                    link.where,
                    f"record seq {link.seq} at {link.where} is not the one the "
                    f"{witness.source} records: the chain was rewritten from there on",
                )
        if self.on_record is not None:
            self.on_record(link.seq, leaf_hash(stored) if stored is not None else None)

    # -- boundaries and the end ------------------------------------------------------

    def _segment_end(self, end: SegmentEnd) -> None:
        s = self.s
        segment, s.segment = s.segment, _Segment()
        if end.last or s.mac_failure is not None:
            return
        if segment.records == 0:
            self._fail(
                "truncated",
                end.name,
                f"the log was truncated: segment {end.name} is empty, though a later segment "
                "follows it",
            )
        elif segment.sealed_at is None:
            last = s.last.seq if s.last else 0
            self._fail(
                "truncated",
                end.name,
                f"the log was truncated: segment {end.name} ends at seq {last} without its "
                "seal record, so records were cut from its end",
            )

    def _finish(self) -> None:
        s = self.s
        if s.mac_failure is not None:
            if not s.macs_seen:
                message = "the log carries no MACs, so it cannot be checked with this key"
            else:
                message = "no record's MAC matches the key: it is the wrong key for this log"
            self._fail("wrong-key", s.mac_failure.where, message)
            return
        start = s.start
        if start is not None and start.seq != 1 and (start.seq, start.prev) not in s.anchors:
            self._fail(
                "deleted",
                start.where,
                f"{_span(1, start.seq - 1)} deleted: the log starts at seq {start.seq} "
                f"({start.where}) and no pruning record accounts for the earlier ones",
            )
            return
        last_seq = s.last.seq if s.last else 0
        for witness in self.witnesses:
            if witness.seq > last_seq:
                where = s.last.where if s.last else self.writer
                self._fail(
                    "truncated",
                    where,
                    f"the log was truncated: it ends at seq {last_seq} but the "
                    f"{witness.source} records seq {witness.seq}",
                )
                return


def verify_chain(
    writer: str,
    items: Iterable[Item],
    *,
    key: bytes | None = None,
    witnesses: Sequence[Witness] = (),
    live: bool = False,
    on_record: Callable[[int, bytes | None], None] | None = None,
    anchors: Iterable[tuple[int, str]] = (),
) -> ChainReport:
    """Verify one writer's chain; `live` tolerates a last line still being written.

    `on_record(seq, leaf)` is called for each record accepted, in chain order, with its
    Merkle leaf hash (`tlog.record_leaf`; None if JSON cannot hold it), so a caller builds
    the writer's tree in the same pass (`tlog.LeafTree`). `anchors` are `(resumeSeq,
    resumePrev)` pairs of pruning records kept elsewhere than in this chain (`pruning`):
    where the chain may start after its oldest records were pruned.
    """
    return _Verifier(writer, items, key, witnesses, live, on_record, anchors).run()
