"""`jitgate audit verify|query|export|tail|report`: check and read the audit log.

Exit codes: 0 success; 1 the check failed (a tampered or damaged log); 2 bad usage or
input that cannot be read at all. Errors are one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import functools
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from jitgate.audit.chain import mac_matches, stored_form
from jitgate.audit.connect import open_log_reader
from jitgate.audit.errors import AuditDataError, AuditError
from jitgate.audit.keys import load_key
from jitgate.audit.query import (
    CSV_COLUMNS,
    TABLE_COLUMNS,
    Selection,
    csv_row,
    describe_action,
    format_table,
    table_row,
)
from jitgate.audit.reader import LogReader, StoredRecord
from jitgate.audit.report import BusinessHours, Report, ReportConfig, build_report
from jitgate.audit.timefmt import parse_span, parse_when
from jitgate.audit.verify import ChainReport, Problem, Witness, verify_chain
from jitgate.cli.options import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, Parser, add_flag
from jitgate.core.clock import SYSTEM_CLOCK, Clock

PROGRESS_EVERY: Final = 2.0  # seconds between progress lines on stderr
Handler = Callable[[argparse.Namespace], int]


class _Failure(Exception):
    """A one-sentence error with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _say(command: str, message: str) -> None:
    message = message.strip().rstrip(".")
    sys.stderr.write(f"jitgate audit {command}: {message}.\n")


def _guarded(command: str, handler: Handler) -> Handler:
    """Turn every expected failure into one sentence and an exit code."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except _Failure as failure:
            _say(command, str(failure))
            return failure.code
        except AuditDataError as error:
            _say(command, str(error))
            return EXIT_CHECK_FAILED
        except AuditError as error:
            _say(command, str(error))
            return EXIT_USAGE
        except BrokenPipeError:
            # The reader went away (`| head`): not an error. Keep Python quiet at exit.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except KeyboardInterrupt:
            return 130
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            _say(command, f"{error.strerror or error}{where}")
            return EXIT_USAGE
        except Exception as error:  # a bug: still one sentence, but say what it was
            _say(command, f"unexpected {type(error).__name__}: {error}")
            return EXIT_USAGE

    return run


class _Progress:
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


# -- arguments ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    add_flag(
        parser,
        "--audit",
        metavar="URL",
        required=True,
        help="the audit log: file:///var/lib/jitgate/audit or postgresql://...?table=NAME",
    )
    add_flag(
        parser,
        "--key-file",
        metavar="FILE",
        help="HMAC key to check the records' MACs (also read from JITGATE_AUDIT_KEY_FILE)",
    )


def _filters(parser: argparse.ArgumentParser, *, window: bool = True) -> None:
    group = parser.add_argument_group("filters (repeat a flag to match any of its values)")
    if window:
        group.add_argument(
            "--since", metavar="WHEN", help="RFC 3339 time, date, or age such as 30d or 2h"
        )
        group.add_argument("--until", metavar="WHEN", help="end of the window (exclusive)")
    group.add_argument("--user", action="append", default=[], help="the acting user")
    group.add_argument("--namespace", "-n", action="append", default=[], help="namespace")
    group.add_argument(
        "--type", action="append", default=[], help="record type, e.g. action.denied or request.*"
    )
    group.add_argument(
        "--verb", action="append", default=[], help="exec, attach, portforward, delete, scale"
    )
    group.add_argument("--grant", action="append", default=[], help="grant name")
    group.add_argument("--request", action="append", default=[], help="AccessRequest name")
    group.add_argument("--writer", action="append", default=[], help="writer (pod) id")


def _key(args: argparse.Namespace) -> bytes | None:
    path = args.key_file or os.environ.get("JITGATE_AUDIT_KEY_FILE")
    return load_key(path) if path else None


def _when(text: str | None, flag: str, now: dt.datetime) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text, now)
    except ValueError as error:
        raise _Failure(f"{flag}: {error}") from error


def _selection(args: argparse.Namespace, now: dt.datetime, **extra: Any) -> Selection:
    since = _when(getattr(args, "since", None), "--since", now)
    until = _when(getattr(args, "until", None), "--until", now)
    if since is not None and until is not None and until <= since:
        raise _Failure("--until must be later than --since")
    return Selection(
        since=since,
        until=until,
        users=tuple(args.user),
        namespaces=tuple(args.namespace),
        types=tuple(args.type),
        verbs=tuple(args.verb),
        grants=tuple(args.grant),
        requests=tuple(args.request),
        writers=tuple(args.writer),
        **extra,
    )


@contextlib.contextmanager
def _reader(args: argparse.Namespace) -> Iterator[LogReader]:
    reader = open_log_reader(args.audit)
    try:
        yield reader
    finally:
        reader.close()


def _checked(records: Iterable[StoredRecord], key: bytes | None) -> Iterator[StoredRecord]:
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


# -- verify ---------------------------------------------------------------------------


def _expected_heads(path: str | None) -> dict[str, Witness]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
        return {
            str(writer): Witness(int(head["seq"]), str(head["hash"]), f"saved head in {path}")
            for writer, head in data.items()
        }
    except OSError as error:
        raise _Failure(f"cannot read the heads file {path}: {error.strerror or error}") from error
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise _Failure(
            f"the heads file {path} is not what --save-heads writes ({error})"
        ) from error


def _verify(args: argparse.Namespace) -> int:
    key = _key(args)
    expected = _expected_heads(args.expect_heads)
    progress = _Progress("verified")
    reports: list[ChainReport] = []
    with _reader(args) as reader:
        writers = reader.writers()
        missing = sorted(set(args.writer) - set(writers))
        if missing:
            raise _Failure(f"there is no writer {missing[0]!r} in the {reader.description}")
        for writer in args.writer or writers:
            witnesses, notes = reader.witnesses(writer)
            if writer in expected:
                witnesses.append(expected[writer])
            for note in notes:
                sys.stderr.write(f"note: {note}\n")
            report = verify_chain(
                writer,
                reader.chain(writer),
                key=key,
                witnesses=witnesses,
                live=reader.is_live(writer),
                on_record=progress.tick,
            )
            reports.append(report)
            _print_report(report)
        for writer in sorted(set(expected) - set(writers)):
            gone = Problem(
                "deleted",
                writer,
                f"the log of writer {writer} was deleted: the saved heads record "
                f"seq {expected[writer].seq}",
            )
            reports.append(ChainReport(writer, 0, None, None, gone))
            _print_report(reports[-1])
    progress.done()
    if args.save_heads:
        heads = {r.writer: {"seq": r.head.seq, "hash": r.head.hash} for r in reports if r.head}
        Path(args.save_heads).write_text(json.dumps(heads, indent=2, sort_keys=True) + "\n")
    return _verdict(reports, key, args)


def _print_report(report: ChainReport) -> None:
    if report.problem is None:
        span = f"seq {report.first_seq}-{report.head.seq}" if report.head else "no records"
        head = f"  head {report.head.hash[:23]}..." if report.head else ""
        print(f"ok      {report.writer}: {report.records} records, {span}{head}")
    elif report.problem.kind != "wrong-key":
        print(f"FAILED  {report.writer}: {report.problem.message}")
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")


def _verdict(reports: list[ChainReport], key: bytes | None, args: argparse.Namespace) -> int:
    broken = [r for r in reports if r.problem is not None and r.problem.kind != "wrong-key"]
    wrong_key = [r for r in reports if r.problem is not None and r.problem.kind == "wrong-key"]
    records = sum(r.records for r in reports)
    if broken:
        print(
            f"The audit log is BROKEN: {len(broken)} of {len(reports)} writer(s) failed "
            "verification; the first broken record of each is named above."
        )
        return EXIT_CHECK_FAILED
    if wrong_key:
        path = args.key_file or os.environ.get("JITGATE_AUDIT_KEY_FILE")
        problem = wrong_key[0].problem
        assert problem is not None
        raise _Failure(
            f"the key in {path} does not fit writer {wrong_key[0].writer}: {problem.message}"
        )
    if not reports:
        print("The audit log is empty.")
        return EXIT_OK
    macs = "" if key is not None else " (MACs not checked: no --key-file)"
    print(f"The audit log is intact: {len(reports)} writer(s), {records} records{macs}.")
    return EXIT_OK


# -- query and export -----------------------------------------------------------------


def _records(
    args: argparse.Namespace, reader: LogReader, selection: Selection, progress: _Progress
) -> Iterator[StoredRecord]:
    records = _checked(reader.records(selection), _key(args))
    if getattr(args, "limit", None):
        records = itertools.islice(records, args.limit)
    for stored in records:
        progress.tick()
        yield stored


def _json_line(stored: StoredRecord) -> str:
    return stored_form(stored.data).decode()


def _write_json_array(out: IO[str], records: Iterable[StoredRecord]) -> int:
    count = 0
    out.write("[")
    for stored in records:
        out.write(("," if count else "") + "\n" + _json_line(stored))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _write_csv(out: IO[str], records: Iterable[StoredRecord]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for stored in records:
        stored.record  # noqa: B018 - refuse a damaged record rather than export it half
        writer.writerow(csv_row(stored.data))
        count += 1
    return count


def _query(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    selection = _selection(args, clock.now())
    progress = _Progress("read")
    with _reader(args) as reader:
        records = _records(args, reader, selection, progress)
        if args.output == "json":
            _write_json_array(sys.stdout, records)
        elif args.output == "csv":
            _write_csv(sys.stdout, records)
        else:
            rows = [table_row(stored.record) for stored in records]
            if rows:
                sys.stdout.write(format_table(TABLE_COLUMNS, rows))
            else:
                sys.stderr.write("No audit records match.\n")
    progress.done()
    return EXIT_OK


def _export(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    selection = _selection(args, clock.now(), internal=True)
    progress = _Progress("exported")
    with _reader(args) as reader:
        records = _records(args, reader, selection, progress)
        if args.out in (None, "-"):
            count = _export_to(sys.stdout, args.format, records)
        else:
            target = Path(args.out)
            partial = target.with_name(f".{target.name}.partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    count = _export_to(out, args.format, records)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            sys.stderr.write(f"Exported {count} records to {target}.\n")
    progress.done()
    return EXIT_OK


def _export_to(out: IO[str], form: str, records: Iterable[StoredRecord]) -> int:
    if form == "csv":
        return _write_csv(out, records)
    count = 0
    for stored in records:
        out.write(_json_line(stored) + "\n")
        count += 1
    return count


# -- tail -----------------------------------------------------------------------------


def _tail_line(stored: StoredRecord, output: str) -> str:
    if output == "json":
        return _json_line(stored)
    record = stored.record
    parts = [record.time, f"{record.writer}#{record.seq}", record.type]
    parts += [record.user or "-", record.namespace or "-", describe_action(record) or "-"]
    parts += [f"request={record.request}"] if record.request else []
    parts += [f"grant={record.grant}"] if record.grant else []
    return "  ".join(parts)


def _tail(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    selection = _selection(args, clock.now())
    try:
        interval = parse_span(args.interval).total_seconds()
        deadline = time.monotonic() + parse_span(args.for_).total_seconds() if args.for_ else None
    except ValueError as error:
        raise _Failure(str(error)) from error
    key = _key(args)
    with _reader(args) as reader:
        follower = reader.follow(selection) if args.follow else None
        seen: dict[str, int] = {}
        for stored in _checked(reader.latest(selection, args.lines), key):
            print(_tail_line(stored, args.output))
            seen[stored.record.writer] = max(seen.get(stored.record.writer, 0), stored.record.seq)
        sys.stdout.flush()
        followed = 0
        while follower is not None:
            if args.max_records is not None and followed >= args.max_records:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            fresh = [s for s in follower.poll() if s.record.seq > seen.get(s.record.writer, 0)]
            for stored in _checked(fresh, key):
                print(_tail_line(stored, args.output))
                seen[stored.record.writer] = stored.record.seq
                followed += 1
                if args.max_records is not None and followed >= args.max_records:
                    break
            sys.stdout.flush()
            if not fresh:
                time.sleep(interval)
    return EXIT_OK


# -- report ---------------------------------------------------------------------------


def _report(args: argparse.Namespace, clock: Clock = SYSTEM_CLOCK) -> int:
    now = clock.now()
    since = _when(args.since, "--since", now)
    until = _when(args.until, "--until", now) or now
    assert since is not None
    if until <= since:
        raise _Failure("--until must be later than --since")
    try:
        hours = BusinessHours.parse(args.business_hours, args.business_days, args.timezone)
        window = parse_span(args.burst_window)
    except ValueError as error:
        raise _Failure(str(error)) from error
    config = ReportConfig(
        since=since,
        until=until,
        hours=hours,
        repeat_threshold=args.repeat_threshold,
        burst_threshold=args.burst_threshold,
        burst_window=window,
    )
    progress = _Progress("reviewed")
    selection = Selection(since=since, until=until, internal=True)
    with _reader(args) as reader:
        records = (stored.record for stored in _records(args, reader, selection, progress))
        report = build_report(records, config)
    progress.done()
    if args.output == "json":
        print(report.model_dump_json(indent=2))
    else:
        sys.stdout.write(_report_text(report, hours))
    return EXIT_CHECK_FAILED if args.fail_on_findings and report.findings else EXIT_OK


def _local(text: str | None, hours: BusinessHours) -> str:
    if not text:
        return "-"
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(hours.zone)
    return when.strftime("%Y-%m-%d %H:%M %Z")


def _report_text(report: Report, hours: BusinessHours) -> str:
    out = [
        f"Access review {report.since} to {report.until}; business hours {report.businessHours}; "
        f"{report.records} records.\n"
    ]
    out.append(f"\nREQUESTS ({len(report.requests)})\n")
    rows: list[tuple[str, ...]]
    if report.requests:
        rows = [
            (
                _local(r.created, hours),
                f"{r.namespace}/{r.request}",
                r.requester or "-",
                "; ".join(r.actions) or "-",
                ", ".join(
                    f"{a.user} ({'approved' if a.decision == 'Approve' else a.decision.lower()}"
                    f"{': ' + repr(a.comment) if a.comment else ', no comment'})"
                    for a in r.approvals
                )
                or ("break-glass" if r.breakGlass else "-"),
                r.outcome + (" (break-glass)" if r.breakGlass else ""),
                r.grant or "-",
                str(r.uses),
            )
            for r in report.requests
        ]
        header = (
            "CREATED",
            "REQUEST",
            "REQUESTER",
            "ACTIONS",
            "APPROVALS",
            "OUTCOME",
            "GRANT",
            "USES",
        )
        out.append(format_table(header, rows))
    out.append(f"\nUSAGE ({len(report.usage)})\n")
    if report.usage:
        rows = [
            (
                u.user or "-",
                u.namespace or "-",
                u.grant or "(no grant)",
                "; ".join(u.actions),
                str(u.uses),
                _local(u.first, hours),
                _local(u.last, hours),
            )
            for u in report.usage
        ]
        out.append(
            format_table(("USER", "NAMESPACE", "GRANT", "ACTIONS", "USES", "FIRST", "LAST"), rows)
        )
    out.append(f"\nFINDINGS ({len(report.findings)})\n")
    if report.findings:
        rows = [
            (f.kind, _local(f.time, hours), f.user or "-", f.namespace or "-", f.subject, f.detail)
            for f in report.findings
        ]
        out.append(
            format_table(("FINDING", "TIME", "USER", "NAMESPACE", "SUBJECT", "DETAIL"), rows)
        )
    else:
        out.append("None.\n")
    return "".join(out)


# -- registration ---------------------------------------------------------------------


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="verify, query, export, follow and review the audit log",
        description="Verify, query, export, follow and review jitgate's tamper-evident audit log. "
        "Exit codes: 0 success, 1 check failed (tampered or damaged log), 2 bad usage or "
        "unreadable input.",
    )
    audit.set_defaults(func=lambda args: _usage(audit))
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", parser_class=Parser)

    verify = commands.add_parser(
        "verify",
        help="check every writer's hash chain (and MACs with --key-file)",
        description="Check every writer's hash chain, seals, head witnesses and (with a key) "
        "MACs. Exit 0 if intact; 1 naming the first broken record of each broken writer "
        "and how it broke (edited, deleted, inserted, reordered, truncated, bad MAC); "
        "2 if the log or the key cannot be read or the key does not fit.",
    )
    _common(verify)
    verify.add_argument("--writer", action="append", default=[], help="only this writer")
    verify.add_argument(
        "--save-heads", metavar="FILE", help="after verifying, save each writer's head here"
    )
    verify.add_argument(
        "--expect-heads",
        metavar="FILE",
        help="heads saved by an earlier run: each must still be in the log (catches truncation "
        "and rewriting by someone with write access)",
    )
    verify.set_defaults(func=_guarded("verify", _verify))

    query = commands.add_parser(
        "query", help="print selected records as a table, JSON or CSV", description="Print "
        "selected records in time order: a table by default, or a JSON array or CSV."
    )  # fmt: skip
    _common(query)
    _filters(query)
    query.add_argument("--output", "-o", choices=("table", "json", "csv"), default="table")
    query.add_argument("--limit", type=_positive, metavar="N", help="at most N records")
    query.set_defaults(func=_guarded("query", _query))

    export = commands.add_parser(
        "export",
        help="write selected records as JSON Lines or CSV",
        description="Write selected records (the writers' own seal, pruning and recovery "
        "records included) as JSON Lines, exactly as hashed, or as CSV.",
    )
    _common(export)
    _filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(func=_guarded("export", _export))

    tail = commands.add_parser(
        "tail", help="print the latest records, and follow new ones with --follow"
    )
    _common(tail)
    _filters(tail, window=False)
    tail.add_argument("--lines", type=_count, default=10, metavar="N", help="latest N (10)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument("--interval", default="1s", help="how often to look for new records")
    tail.add_argument("--max-records", type=_positive, metavar="N", help="stop after N new ones")
    tail.add_argument("--for", dest="for_", metavar="DURATION", help="stop following after this")
    tail.add_argument("--output", "-o", choices=("line", "json"), default="line")
    tail.set_defaults(func=_guarded("tail", _tail))

    report = commands.add_parser(
        "report",
        help="the periodic access review: requests, approvals, use and findings",
        description="Who requested, approved and used what in the window, and findings: "
        "actions outside business hours, repeated requests for one object, approvals "
        "without a comment, break-glass grants awaiting review, bursts of denials.",
    )
    _common(report)
    report.add_argument("--since", default="30d", metavar="WHEN", help="window start (30d)")
    report.add_argument("--until", metavar="WHEN", help="window end (now)")
    report.add_argument("--business-hours", default="08:00-18:00", metavar="HH:MM-HH:MM")
    report.add_argument("--business-days", default="Mon-Fri", metavar="DAYS")
    report.add_argument("--timezone", default="UTC", metavar="ZONE", help="e.g. Europe/Berlin")
    report.add_argument("--repeat-threshold", type=_positive, default=3, metavar="N")
    report.add_argument("--burst-threshold", type=_positive, default=5, metavar="N")
    report.add_argument("--burst-window", default="10m", metavar="DURATION")
    report.add_argument("--output", "-o", choices=("table", "json"), default="table")
    report.add_argument(
        "--fail-on-findings", action="store_true", help="exit 1 when there are findings"
    )
    report.set_defaults(func=_guarded("report", _report))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("it must be at least 1")
    return value
