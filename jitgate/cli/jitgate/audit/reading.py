"""Reading the audit log for a subcommand: the reader, the key, the selection, MAC checks,
and progress lines on stderr when a run takes a while."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

from jitgate.audit.chain import HELD, PRUNED, RECOVERED, RELEASED, SEALED, mac_matches
from jitgate.audit.connect import open_log_reader
from jitgate.audit.errors import AuditDataError
from jitgate.audit.keys import load_key
from jitgate.audit.query import Selection
from jitgate.audit.reader import LogReader, StoredRecord
from jitgate.audit.timefmt import parse_when
from jitgate.cli.errors import UsageError
from jitgate.cli.jitgate.audit.options import Filters, LogOptions
from jitgate.cli.kinds import KindError, resource_for
from jitgate.core.events import RECORD_TYPES, WEBHOOK_PROBE
from jitgate.core.vocabulary import PODS, VERBS

PROGRESS_EVERY: Final = 2.0  # seconds between progress lines on stderr


class Progress:
    """Counts records and says how far it got on stderr, only when a run takes a while."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.count = 0
        self.started = time.monotonic()
        self.next_report = self.started + PROGRESS_EVERY
        self.reported = False

    def tick(self) -> None:
        self.count += 1
        if self.count % 1024 == 0 and time.monotonic() >= self.next_report:
            self.next_report = time.monotonic() + PROGRESS_EVERY
            self.reported = True
            sys.stderr.write(f"{self.verb} {self.count} records...\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.reported:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"{self.verb} {self.count} records in {elapsed:.1f}s.\n")


def key(log: LogOptions) -> bytes | None:
    path = log.key_path
    return load_key(path) if path else None


def when(text: str | None, flag: str, now: dt.datetime) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text, now)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from error


# Every type a jitgate writer records: a --type outside these (or their families) is a typo,
# and answering it with "no records match" would read as "nothing happened".
KNOWN_TYPES: Final = (*RECORD_TYPES, SEALED, PRUNED, RECOVERED, HELD, RELEASED, WEBHOOK_PROBE)


def _known_type(text: str) -> bool:
    if text.endswith(".*"):
        return any(kind.startswith(text[:-1]) for kind in KNOWN_TYPES)
    return text in KNOWN_TYPES


def _refuse_unknown_values(filters: Filters) -> None:
    for kind in filters.type:
        if not _known_type(kind):
            raise UsageError(
                f"--type {kind!r} is not a record type; use one of {', '.join(KNOWN_TYPES)}, "
                "or a family such as request.*"
            )
    for verb in filters.verb:
        if verb not in VERBS:
            raise UsageError(f"--verb {verb!r} is not a verb; use one of {', '.join(VERBS)}")


def _objects(filters: Filters) -> tuple[tuple[str, str], ...]:
    """--pod NAME and --object KIND/NAME (kubectl's kinds: pod/web-0, deploy/web) as
    (plural resource, name) pairs, as action records name their target."""
    objects = [(PODS, name) for name in filters.pod]
    for text in filters.object:
        kind, slash, name = text.partition("/")
        if not slash or not kind or not name or "/" in name:
            raise UsageError(f"--object {text!r} is not KIND/NAME; write it like pod/web-0")
        try:
            objects.append((resource_for(kind), name))
        except KindError as error:
            raise UsageError(f"--object {text!r}: {error}") from error
    return tuple(objects)


def selection(filters: Filters, now: dt.datetime, **extra: Any) -> Selection:
    _refuse_unknown_values(filters)
    since = when(filters.since, "--since", now)
    until = when(filters.until, "--until", now)
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must be later than --since")
    return Selection(
        since=since,
        until=until,
        users=filters.user,
        namespaces=filters.namespace,
        types=filters.type,
        verbs=filters.verb,
        grants=filters.grant,
        requests=filters.request,
        writers=filters.writer,
        objects=_objects(filters),
        sessions=filters.session,
        **extra,
    )


@contextlib.contextmanager
def opened(log: LogOptions) -> Iterator[LogReader]:
    reader = open_log_reader(log.audit)
    try:
        yield reader
    finally:
        reader.close()


def checked(records: Iterable[StoredRecord], key: bytes | None) -> Iterator[StoredRecord]:
    """With a key, refuse to hand out a record whose MAC does not match."""
    for stored in records:
        if key is not None and not mac_matches(
            str(stored.data.get("hash")), stored.data.get("mac"), key
        ):
            raise AuditDataError(
                f"the record at {stored.where} has a bad MAC (or the key is wrong); "
                "run `jitgate audit verify`"
            )
        yield stored


def records(
    log: LogOptions,
    reader: LogReader,
    chosen: Selection,
    progress: Progress,
    limit: int | None = None,
) -> Iterator[StoredRecord]:
    """The selected records, MAC-checked with the log's key, at most `limit`, counted."""
    stream = checked(reader.records(chosen), key(log))
    if limit:
        stream = itertools.islice(stream, limit)
    for stored in stream:
        progress.tick()
        yield stored
