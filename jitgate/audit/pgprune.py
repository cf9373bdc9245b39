"""Retention and legal hold of a PostgreSQL audit table (`jitgate audit prune`, `hold`).

Writers never delete: their role may only INSERT and SELECT, and the table refuses UPDATE,
DELETE and TRUNCATE to everyone. Retention drops whole partitions, run by a pruning role
that may do nothing else to the records (`grants`), in four steps:

1. plan: the partitions wholly older than now minus the table's retention (its owner sets
   it: `retention=` in the owner's URL); nothing while a legal hold is in force;
2. check: each writer's records in them form a whole chain from where its log starts now
   (`verify_chain`, and the MACs with a key), and end right before its oldest record kept
   (a record kept that is older than one pruned, from a clock gone back, stops it);
3. record: one `audit.pruned` record in the pruner's own chain names the partitions and,
   for every writer ever pruned, where its log now starts (`pruning.Anchor`: the first
   seq kept, the hash it links to, the Merkle tree state of everything before it), so
   the latest pruning record alone accounts for every pruned prefix, and `verify`,
   `verify --verifier-key` and `prove` carry on from it; stored durably before step 4;
4. drop: `<table>_drop_partition(name)`, oldest first, which checks retention, the hold,
   the order and the pruning record again inside the database.

A legal hold (`set_hold`, `release_hold`) is a row of `<table>_holds`, which only the
table's owner may write, and a record (`audit.held`, `audit.released`) in the chain of
the admin who set or released it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from jitgate.audit.errors import AuditDataError, AuditReadError, AuditWriteError
from jitgate.audit.pgreader import PostgresLogReader, connect_to_read
from jitgate.audit.pgschema import PARTITIONS_VERSION, statement
from jitgate.audit.pgsink import one_line
from jitgate.audit.pruning import Anchor, by_writer, pruned_prefix
from jitgate.audit.url import PostgresTarget

DEFAULT_PRUNER: Final = "pruner"
# Partitions made ahead of the writers on every run, so a missed run costs nothing.
_AHEAD: Final = (
    "SELECT {add_partitions}(now(), now() + 2 * (SELECT ('1 ' || period)::interval "
    "FROM {settings}))"
)


@dataclass(frozen=True)
class Hold:
    id: int
    reason: str
    held_by: str
    held_at: dt.datetime


@dataclass(frozen=True)
class Partition:
    name: str
    lower: dt.datetime
    upper: dt.datetime


@dataclass(frozen=True)
class Plan:
    """What one run prunes and what its pruning record says."""

    partitions: tuple[Partition, ...]
    retention: dt.timedelta
    anchors: Mapping[str, Anchor]  # every writer ever pruned, this run's included
    pruned: Mapping[str, tuple[int, int]]  # this run's: writer -> (first seq, last seq)

    def context(self) -> dict[str, Any]:
        return {
            "partitions": [p.name for p in self.partitions],
            "before": self.partitions[-1].upper.astimezone(dt.UTC).isoformat(),
            "retentionSeconds": int(self.retention.total_seconds()),
            "pruned": {w: {"firstSeq": a, "lastSeq": b} for w, (a, b) in self.pruned.items()},
            "writers": {w: anchor.state() for w, anchor in sorted(self.anchors.items())},
        }


@dataclass(frozen=True)
class Nothing:
    """Why nothing is pruned now (not a failure)."""

    reason: str
    holds: tuple[Hold, ...] = ()


class PruneRefused(AuditDataError):
    """The records to prune do not check out; nothing was pruned."""


class Table:
    """A connection to one audit table for retention and holds, as whatever role it has."""

    def __init__(self, target: PostgresTarget) -> None:
        self.target = target
        self.description = target.describe()
        self.conn = connect_to_read(target, "jitgate-audit-retention")
        try:
            self._check_version()
        except BaseException:
            self.conn.close()
            raise

    def _check_version(self) -> None:
        row = self.conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f'"{self.target.table}_partitions"']
        ).fetchone()
        if not row or not row[0]:
            raise AuditReadError(
                f"the {self.description} has no partitions to prune or hold (schema version "
                f"{PARTITIONS_VERSION} or later); open it with a writer of this jitgate first"
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, text: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[Any]:
        try:
            return self.conn.execute(statement(text, self.target.table), params).fetchall()
        except psycopg.Error as error:
            raise AuditWriteError(
                f"cannot change the {self.description}: {one_line(error)}"
            ) from error

    def holds(self) -> tuple[Hold, ...]:
        rows = self.run(
            "SELECT id, reason, held_by, held_at FROM {holds} WHERE released_at IS NULL ORDER BY id"
        )
        return tuple(Hold(int(i), str(r), str(b), at) for i, r, b, at in rows)

    def add_hold(self, reason: str) -> Hold:
        (row,) = self.run(
            "INSERT INTO {holds} (reason) VALUES (%s) RETURNING id, reason, held_by, held_at",
            [reason],
        )
        return Hold(int(row[0]), str(row[1]), str(row[2]), row[3])

    def may_release(self) -> bool:
        """Whether this role may release holds (the owner), asked before recording one."""
        ((allowed,),) = self.run(
            "SELECT has_table_privilege(%s, 'UPDATE')", [f"{self.target.table}_holds"]
        )
        return bool(allowed)

    def release_holds(self, reason: str) -> int:
        rows = self.run(
            "UPDATE {holds} SET released_at = now(), released_by = current_user, "
            "release_reason = %s WHERE released_at IS NULL RETURNING id",
            [reason],
        )
        return len(rows)

    def current_user(self) -> str:
        ((user,),) = self.run("SELECT current_user")
        return str(user)

    def add_partitions_ahead(self) -> None:
        self.run(_AHEAD)

    def drop(self, partition: Partition) -> None:
        self.run("SELECT {drop_partition}(%s)", [partition.name])

    # -- planning -----------------------------------------------------------------------

    def plan(self, reader: PostgresLogReader, key: bytes | None) -> Plan | Nothing:
        ((retention,),) = self.run("SELECT retention FROM {settings}")
        if retention is None:
            return Nothing(
                f"the {self.description} keeps every record: its owner sets a retention "
                "with retention= in the audit URL"
            )
        holds = self.holds()
        if holds:
            return Nothing(f"the {self.description} is under legal hold", holds)
        expired = [
            Partition(str(n), lo, hi)
            for n, lo, hi in self.run(
                "SELECT name, lower, upper FROM {partitions} WHERE upper <= now() - %s "
                "ORDER BY lower",
                [retention],
            )
        ]
        if not expired:
            return Nothing(f"no partition of the {self.description} is past its retention")
        before = expired[-1].upper
        earlier = by_writer(reader.pruning_records())
        anchors = {w: max(found, key=lambda a: a.resume_seq) for w, found in earlier.items()}
        victims = self.run(
            "SELECT writer, min(seq), max(seq), count(*) FROM {t} WHERE time < %s "
            "GROUP BY writer ORDER BY writer",
            [before],
        )
        kept = dict(
            self.run(
                "SELECT writer, min(seq) FROM {t} WHERE time >= %s AND writer = ANY(%s) "
                "GROUP BY writer",
                [before, [row[0] for row in victims]],
            )
        )
        pruned: dict[str, tuple[int, int]] = {}
        for writer, first, last, count in victims:
            # Where its log starts now: seq 1, or where an earlier pruning record says (not
            # always the latest: a run that stopped between its record and its drops).
            prior = next((a for a in earlier.get(writer, []) if a.resume_seq == first), None)
            anchor = self._anchor(reader, key, writer, prior, (first, last, count), kept)
            anchors[writer] = anchor
            pruned[writer] = (int(first), int(last))
        return Plan(tuple(expired), retention, anchors, pruned)

    def _anchor(
        self,
        reader: PostgresLogReader,
        key: bytes | None,
        writer: str,
        prior: Anchor | None,
        victims: tuple[int, int, int],
        kept: Mapping[str, int],
    ) -> Anchor:
        """Where `writer`'s log starts once its records `victims` (first, last, count) go."""
        first, last, count = victims
        if (first != 1 and prior is None) or last - first + 1 != count:
            raise PruneRefused(
                f"writer {writer}'s records to prune are not whole: seq {first}-{last} "
                f"({count} records), and no pruning record accounts for any before seq "
                f"{first}; run `jitgate audit verify`. Nothing was pruned"
            )
        if writer in kept and kept[writer] != last + 1:
            raise PruneRefused(
                f"writer {writer} keeps record seq {kept[writer]} while seq {last} would be "
                "pruned, its records being out of time order (a clock set back); nothing was "
                "pruned"
            )
        try:
            return pruned_prefix(writer, reader.chain(writer), last, prior, key)
        except ValueError as error:
            raise PruneRefused(
                f"writer {writer}'s records to prune do not verify: {error}; nothing was pruned"
            ) from error


_ROLE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grants(table: str, *, writer: str, pruner: str) -> list[str]:
    """The GRANTs of the two roles besides the table's owner, as SQL (README, tests).

    The writer role (operator, webhook) and the pruning role may read the records and
    append to their own chains, nothing more: no UPDATE, DELETE or TRUNCATE, no DDL. Both
    may add the partitions records need (`<table>_add_partitions`); only the pruning role
    may drop whole expired partitions (`<table>_drop_partition`, which checks retention,
    the hold and the pruning record). Only the owner sets retention and legal holds.
    """
    for role in (writer, pruner):
        if not _ROLE.match(role):
            raise ValueError(f"role name {role!r} must be lower-case letters, digits and _")
    t = table
    lines = []
    for role in (writer, pruner):
        lines += [
            f"GRANT SELECT, INSERT ON {t}, {t}_checkpoints TO {role};",
            f"GRANT SELECT, INSERT, UPDATE ON {t}_heads, {t}_checkpoint TO {role};",
            f"GRANT SELECT ON {t}_schema_version, {t}_settings, {t}_partitions, {t}_holds "
            f"TO {role};",
            f"GRANT EXECUTE ON FUNCTION {t}_add_partitions(timestamptz, timestamptz) TO {role};",
        ]
    lines.append(f"GRANT EXECUTE ON FUNCTION {t}_drop_partition(text) TO {pruner};")
    return lines
