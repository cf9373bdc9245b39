"""`jitgate audit sessions` (the recorded sessions, as a table or JSON), `jitgate audit replay`
(one session played in the terminal, at its own speed or faster) and `export --format
asciicast` (asciicast v2, for asciinema players).

Sessions are read with `jitgate.audit.sessionlog`; what a session's records hold is
`jitgate.core.sessions`. DECISION is the `writer:seq` of the `action.allowed` record that let
the session open: from the approval (`--request`, `--grant`) to that decision to the recording.
The filters choose sessions, not records: `--user`, `--namespace`, `--pod`, `--grant`,
`--request` and `--since`/`--until` (its start) match what its `session.started` record says.
A port-forward session has no terminal recording: the listing shows its connections and the
bytes forwarded each way, and replay lists the connections.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO, Final

from jitgate.audit.errors import AuditDataError
from jitgate.audit.query import Selection
from jitgate.audit.sessionlog import RecordingError, Session, sessions_of
from jitgate.cli import render
from jitgate.cli.errors import EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import (
    ExportOptions,
    Filters,
    LogOptions,
    ReplayOptions,
    SessionsOptions,
)
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.durations import format_duration
from jitgate.core.events import ACTION_ALLOWED
from jitgate.core.sessions import asciicast, replay_steps

COLUMNS: Final = (
    "SESSION",
    "START",
    "DURATION",
    "USER",
    "POD",
    "COMMAND",
    "GRANT",
    "REQUEST",
    "DECISION",
    "APPROVERS",
    "REASON",
    "ENDED",
)
# How replay waits; tests replace it to see the pauses without waiting them out.
sleep: Callable[[float], None] = time.sleep


def _read(log: LogOptions, selection: Selection, play: Iterable[str] = ()) -> list[Session]:
    progress = reading.Progress("read")
    with reading.opened(log) as reader:
        records = [stored.record for stored in reading.records(log, reader, selection, progress)]
    progress.done()
    return sessions_of(records, play=play)


def _chosen(filters: Filters, now: dt.datetime) -> Callable[[Session], bool]:
    since = reading.when(filters.since, "--since", now)
    until = reading.when(filters.until, "--until", now)
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must be later than --since")

    def wanted(session: Session) -> bool:
        checks = (
            (filters.user, session.user),
            (filters.namespace, session.namespace),
            (filters.pod, session.pod),
            (filters.grant, session.grant),
            (filters.request, session.request),
        )
        if any(values and value not in values for values, value in checks):
            return False
        if since is not None and session.started_at < since:
            return False
        return until is None or session.started_at < until

    return wanted


# A session's records, and the decision that let it open (it carries the session's id).
SESSION_RECORDS: Final = ("session.*", ACTION_ALLOWED)


def _session_records(filters: Filters) -> Selection:
    return Selection(types=SESSION_RECORDS, writers=filters.writer, sessions=filters.session)


def run_sessions(options: SessionsOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    wanted = _chosen(options.filters, clock.now())
    found = [s for s in _read(options.log, _session_records(options.filters)) if wanted(s)]
    if options.output == "json":
        sys.stdout.write(json.dumps([s.summary() for s in found], indent=2) + "\n")
    elif found:
        sys.stdout.write(render.table([COLUMNS, *(_row(s) for s in found)]))
    else:
        sys.stderr.write("No recorded sessions match.\n")
    return EXIT_OK


def _row(session: Session) -> list[str]:
    where = f"{session.namespace}/{session.pod}" if session.started else "?"
    if session.container:
        where += f" ({session.container})"
    command = " ".join(session.command) if session.command else (session.kind or "")
    if session.kind == "portforward":
        command = _forwarding(session)
    return [
        session.id,
        session.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        _duration(session.duration),
        session.user or "?",
        where,
        command,
        session.grant or "-",
        session.request or "-",
        session.decision or "-",
        ",".join(session.approvers) or "-",
        session.reason or "-",
        session.how_ended + (f" ({'; '.join(session.problems)})" if session.problems else ""),
    ]


def _forwarding(session: Session) -> str:
    """`portforward: 2 connections, 3000 B to the pod, 2900 B from it`."""
    count = len(session.connections)
    to_pod, from_pod = session.forwarded
    plural = "" if count == 1 else "s"
    return f"portforward: {count} connection{plural}, {to_pod} B to the pod, {from_pod} B from it"


def _connection_lines(session: Session) -> str:
    lines = [f"{'OPENED':>9}  {'DURATION':>8}  PORT   TO POD  FROM POD  REQUEST  ENDED"]
    for c in session.connections:
        lines.append(
            f"{_duration(dt.timedelta(milliseconds=c.offset_ms)):>9}  "
            f"{_duration(dt.timedelta(milliseconds=c.duration_ms)):>8}  {c.port:<5}  "
            f"{c.to_pod:>6}  {c.from_pod:>8}  {c.request_id:<7}  {c.ended}"
        )
    return "\n".join(lines) + "\n"


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    if value < dt.timedelta(seconds=1):
        return f"{int(value.total_seconds() * 1000)}ms"
    return format_duration(dt.timedelta(seconds=int(value.total_seconds())))


def _one(log: LogOptions, session_id: str) -> Session:
    found = _read(log, Selection(types=SESSION_RECORDS, sessions=(session_id,)), (session_id,))
    if not found:
        raise UsageError(f"no session {session_id} in the log; `jitgate audit sessions` lists them")
    return found[0]


def _frames_or_fail(session: Session) -> None:
    try:
        session.frames()
    except RecordingError as error:
        # A gap or a damaged chunk: the recording cannot be played as it happened.
        raise AuditDataError(f"{error}; run `jitgate audit verify`") from error


def run_replay(options: ReplayOptions, out: BinaryIO | None = None) -> int:
    session = _one(options.log, options.session)
    _frames_or_fail(session)
    sys.stderr.write(_banner(session))
    sys.stderr.flush()
    target = out if out is not None else sys.stdout.buffer
    if session.kind == "portforward":
        # Its bytes are counted, not recorded: what there is to show is its connections.
        sys.stderr.write(
            f"[a port-forward session has no terminal recording; "
            f"{_forwarding(session).removeprefix('portforward: ')}]\n"
        )
        target.write(_connection_lines(session).encode())
        target.flush()
        sys.stderr.write(f"[session {session.id} {session.how_ended}]\n")
        return EXIT_OK
    for pause, data in replay_steps(
        session.frames(), speed=options.speed, max_idle_s=options.max_idle
    ):
        if pause > 0:
            sleep(pause)
        target.write(data)
        target.flush()
    sys.stderr.write(f"\n[session {session.id} {session.how_ended}]\n")
    return EXIT_OK


def _banner(session: Session) -> str:
    command = " ".join(session.command) if session.command else session.kind
    return (
        f"[session {session.id}: {session.user} {session.kind} on "
        f"{session.namespace}/{session.pod} ({command}), started "
        f"{session.started_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
        f"{_duration(session.duration)}; grant {session.grant or '-'} approved by "
        f"{', '.join(session.approvers) or '-'}, allowed by record {session.decision or '-'}]\n"
    )


def asciicast_of(options: ExportOptions) -> str:
    """`export --format asciicast`: exactly one --session and no other filter."""
    filters = options.filters
    others = {
        "--user": filters.user,
        "--namespace": filters.namespace,
        "--type": filters.type,
        "--verb": filters.verb,
        "--grant": filters.grant,
        "--request": filters.request,
        "--writer": filters.writer,
        "--pod": filters.pod,
        "--object": filters.object,
        "--since": filters.since,
        "--until": filters.until,
    }
    given = [flag for flag, value in others.items() if value]
    if len(filters.session) != 1 or given:
        extra = f" (not {', '.join(given)})" if given else ""
        raise UsageError(
            f"--format asciicast exports one session: give exactly one --session{extra}"
        )
    session = _one(options.log, filters.session[0])
    if session.kind == "portforward":
        raise UsageError(
            f"session {session.id} is a port-forward, which has no terminal recording; "
            f"`jitgate audit replay {session.id}` lists its connections"
        )
    _frames_or_fail(session)
    return asciicast(session.cast_header(), session.events())
