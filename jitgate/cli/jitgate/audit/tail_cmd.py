"""`jitgate audit tail`: the latest records, and with `--follow` every new one as it lands."""

from __future__ import annotations

import sys
import time

from jitgate.audit.query import describe_action
from jitgate.audit.reader import StoredRecord
from jitgate.audit.timefmt import parse_span
from jitgate.cli.errors import EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import TailOptions
from jitgate.cli.jitgate.audit.query_cmd import json_line
from jitgate.core.clock import SYSTEM_CLOCK, Clock


def tail_line(stored: StoredRecord, output: str) -> str:
    if output == "json":
        return json_line(stored)
    record = stored.record
    parts = [record.time, f"{record.writer}#{record.seq}", record.type]
    parts += [record.user or "-", record.namespace or "-", describe_action(record) or "-"]
    parts += [f"request={record.request}"] if record.request else []
    parts += [f"grant={record.grant}"] if record.grant else []
    return "  ".join(parts)


def run(options: TailOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    chosen = reading.selection(options.filters, clock.now())
    try:
        interval = parse_span(options.interval).total_seconds()
        deadline = (
            time.monotonic() + parse_span(options.for_).total_seconds() if options.for_ else None
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    key = reading.key(options.log)
    limit = options.max_records
    with reading.opened(options.log) as reader:
        follower = reader.follow(chosen) if options.follow else None
        seen: dict[str, int] = {}
        for stored in reading.checked(reader.latest(chosen, options.lines), key):
            print(tail_line(stored, options.output))
            seen[stored.record.writer] = max(seen.get(stored.record.writer, 0), stored.record.seq)
        sys.stdout.flush()
        followed = 0
        while follower is not None:
            if limit is not None and followed >= limit:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            fresh = [s for s in follower.poll() if s.record.seq > seen.get(s.record.writer, 0)]
            for stored in reading.checked(fresh, key):
                print(tail_line(stored, options.output))
                seen[stored.record.writer] = stored.record.seq
                followed += 1
                if limit is not None and followed >= limit:
                    break
            sys.stdout.flush()
            if not fresh:
                time.sleep(interval)
    return EXIT_OK
