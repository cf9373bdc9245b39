"""`jitgate audit query` (a table, a JSON array or CSV) and `jitgate audit export` (JSON
Lines exactly as hashed, CSV, or one session as asciicast v2, to stdout or atomically to a
file)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from jitgate.audit.chain import stored_form
from jitgate.audit.query import CSV_COLUMNS, TABLE_COLUMNS, csv_row, table_row
from jitgate.audit.reader import StoredRecord
from jitgate.cli import render
from jitgate.cli.errors import EXIT_OK
from jitgate.cli.jitgate.audit import reading, sessions_cmd
from jitgate.cli.jitgate.audit.options import ExportOptions, QueryOptions
from jitgate.core.clock import SYSTEM_CLOCK, Clock


def json_line(stored: StoredRecord) -> str:
    """The record exactly as it was hashed."""
    return stored_form(stored.data).decode()


def run_query(options: QueryOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    chosen = reading.selection(options.filters, clock.now())
    progress = reading.Progress("read")
    with reading.opened(options.log) as reader:
        records = reading.records(options.log, reader, chosen, progress, options.limit)
        if options.output == "json":
            render.write_json_array(sys.stdout, (json_line(stored) for stored in records))
        elif options.output == "csv":
            render.write_csv(sys.stdout, CSV_COLUMNS, _csv_rows(records))
        else:
            rows = [table_row(stored.record) for stored in records]
            if rows:
                sys.stdout.write(render.table([TABLE_COLUMNS, *rows]))
            else:
                sys.stderr.write("No audit records match.\n")
    progress.done()
    return EXIT_OK


def run_export(options: ExportOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    if options.format == "asciicast":
        cast = sessions_cmd.asciicast_of(options)
        _write(options.out, lambda out: out.write(cast), "the session")
        return EXIT_OK
    chosen = reading.selection(options.filters, clock.now(), internal=True)
    progress = reading.Progress("exported")
    with reading.opened(options.log) as reader:
        records = reading.records(options.log, reader, chosen, progress)
        _write(options.out, lambda out: _export_to(out, options.format, records), "{} records")
    progress.done()
    return EXIT_OK


def _write(target_name: str | None, write: Callable[[IO[str]], int], what: str) -> None:
    """To stdout, or atomically to the file (`what` names what was written, `{}` the count)."""
    if target_name in (None, "-"):
        write(sys.stdout)
        return
    target = Path(target_name)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = write(out)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    sys.stderr.write(f"Exported {what.format(count)} to {target}.\n")


def _export_to(out: IO[str], form: str, records: Iterable[StoredRecord]) -> int:
    if form == "csv":
        return render.write_csv(out, CSV_COLUMNS, _csv_rows(records))
    return render.write_json_lines(out, (json_line(stored) for stored in records))


def _csv_rows(records: Iterable[StoredRecord]) -> Iterator[list[str]]:
    for stored in records:
        stored.record  # noqa: B018 - refuse a damaged record rather than export it half
        yield csv_row(stored.data)
