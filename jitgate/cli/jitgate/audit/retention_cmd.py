"""`jitgate audit prune`, `hold` and `release`: retention and legal hold, each recorded.

(PostgreSQL's modules are imported when used: `psycopg` is an optional extra.)

A file log is pruned by its own writers (`retention=` in the audit URL: sealed segments
past it go, after a pruning record); a PostgreSQL table by `prune`, run as the pruning role
(`pgprune`). A legal hold stops both, and `hold` / `release` record who set or released one
and why, in the chain of the admin running them (`--writer`, default `admin`): on files a
`LEGAL_HOLD` file in the audit directory, on PostgreSQL a row of `<table>_holds`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import os
from typing import Any

from jitgate.audit import filelayout as layout
from jitgate.audit.chain import HELD, PRUNED, RELEASED
from jitgate.audit.connect import append_one
from jitgate.audit.keys import load_checkpoint_key
from jitgate.audit.note import Signer
from jitgate.audit.url import FileTarget, PostgresTarget, parse_audit_url
from jitgate.cli.errors import EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import HoldOptions, PruneOptions
from jitgate.core.clock import format_time
from jitgate.core.events import AuditEvent


def _signer(path: str | None) -> Signer | None:
    return load_checkpoint_key(path) if path else None


def _postgres(url: str, command: str) -> PostgresTarget:
    target = parse_audit_url(url)
    if isinstance(target, FileTarget):
        raise UsageError(
            f"`jitgate audit {command}` is for PostgreSQL; a file log is pruned by its own "
            "writers, past the retention= of their audit URL"
        )
    return target


def run_prune(options: PruneOptions) -> int:
    from jitgate.audit.pgprune import Nothing, Table
    from jitgate.audit.pgreader import PostgresLogReader

    target = _postgres(options.log.audit, "prune")
    key = reading.key(options.log)
    checkpoint_key = _signer(options.checkpoint_key)
    with Table(target) as table:
        table.add_partitions_ahead()
        reader = PostgresLogReader(target)
        try:
            plan = table.plan(reader, key)
        finally:
            reader.close()
        if isinstance(plan, Nothing):
            print(f"Nothing pruned: {plan.reason}.")
            for hold in plan.holds:
                print(f"  hold {hold.id}: {hold.reason} (by {hold.held_by}, {_when(hold.held_at)})")
            return EXIT_OK
        for partition in plan.partitions:
            print(
                f"{'would prune' if options.dry_run else 'pruning'} partition {partition.name}: "
                f"records from {_when(partition.lower)} to before {_when(partition.upper)}"
            )
        for writer, (first, last) in sorted(plan.pruned.items()):
            print(f"  writer {writer}: records seq {first}-{last}")
        if options.dry_run:
            return EXIT_OK
        event = AuditEvent(type=PRUNED, context=plan.context())
        stored = asyncio.run(
            append_one(
                options.log.audit,
                event,
                writer_id=options.writer,
                key=key,
                checkpoint_key=checkpoint_key,
            )
        )
        for partition in plan.partitions:
            table.drop(partition)
    print(
        f"Pruned {len(plan.partitions)} partition(s) of the {target.describe()}, recorded at "
        f"{stored.writer}:{stored.seq}."
    )
    return EXIT_OK


def run_hold(options: HoldOptions) -> int:
    target = parse_audit_url(options.log.audit)
    key = reading.key(options.log)
    context: dict[str, Any]
    if isinstance(target, FileTarget):
        context = {"by": getpass.getuser()}
        _append(options, HELD, context, key)
        entry = {"reason": options.reason, **context, "at": format_time(_now())}
        with (target.root / layout.HOLD_FILE).open("a") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")
            file.flush()
            os.fsync(file.fileno())
        print(f"Legal hold set on the {target.describe()}: nothing is pruned until released.")
        return EXIT_OK
    from jitgate.audit.pgprune import Table

    with Table(target) as table:
        # In force first: a hold whose record then fails still holds (and says so).
        hold = table.add_hold(options.reason)
        context = {"hold": hold.id, "by": hold.held_by}
        try:
            _append(options, HELD, context, key)
        except Exception as error:
            raise UsageError(
                f"legal hold {hold.id} is in force, but its record failed: {error}"
            ) from error
    print(f"Legal hold {hold.id} set on the {target.describe()}: nothing is pruned until released.")
    return EXIT_OK


def run_release(options: HoldOptions) -> int:
    target = parse_audit_url(options.log.audit)
    key = reading.key(options.log)
    if isinstance(target, FileTarget):
        path = target.root / layout.HOLD_FILE
        if not path.exists():
            raise UsageError(f"the {target.describe()} is not under legal hold")
        _append(options, RELEASED, {"by": getpass.getuser()}, key)
        path.unlink()
        print(f"Legal hold released on the {target.describe()}.")
        return EXIT_OK
    from jitgate.audit.pgprune import Table

    with Table(target) as table:
        holds = table.holds()
        if not holds:
            raise UsageError(f"the {target.describe()} is not under legal hold")
        if not table.may_release():
            raise UsageError(
                f"only the owner of the {target.describe()} releases legal holds; "
                f"{table.current_user()} may not"
            )
        # Recorded first: a release whose record failed never takes effect.
        context = {"holds": [hold.id for hold in holds], "by": table.current_user()}
        _append(options, RELEASED, context, key)
        table.release_holds(options.reason)
    print(f"Legal hold released on the {target.describe()} ({len(holds)} hold(s)).")
    return EXIT_OK


def _append(options: HoldOptions, kind: str, context: dict[str, Any], key: bytes | None) -> None:
    event = AuditEvent(type=kind, reason=options.reason, context=context)
    asyncio.run(
        append_one(
            options.log.audit,
            event,
            writer_id=options.writer,
            key=key,
            checkpoint_key=_signer(options.checkpoint_key),
        )
    )


def _when(moment: dt.datetime) -> str:
    return format_time(moment.astimezone(dt.UTC))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
