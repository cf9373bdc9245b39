"""The PostgreSQL sink: one transaction per batch into an append-only table.

Storing is idempotent: a record already stored with the same hash is a no-op, one stored
with a different hash is an error. That makes retrying a batch after a lost connection
safe, since the commit may or may not have happened.

A failed batch leaves no rows: its transaction rolls back, so there is nothing to
`discard`. The one exception is a commit that happened but whose answer was lost, with
the retry failing too: those rows stay (the table refuses DELETE), and the writer marks
them unacknowledged when it recovers.

The table is partitioned by record time: opening makes the partitions for now and the next
period, and a batch with a record outside them makes its partitions and is stored again.
Each batch takes its writer's advisory lock for its transaction, so batches of one writer id
never interleave unseen: a second process writing as the same writer meets the clash check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow

from jitgate.audit.chain import ChainHead, Linked
from jitgate.audit.errors import AuditWriteError
from jitgate.audit.pgschema import ensure_schema, statement
from jitgate.audit.sink import PrunePlan, SinkState
from jitgate.audit.url import PostgresTarget
from jitgate.core.clock import SYSTEM_CLOCK, Clock, parse_time

logger = logging.getLogger("jitgate.audit")

CONNECT_TIMEOUT: Final = 10

_INSERT: Final = """
WITH batch AS (
    SELECT * FROM unnest(
        %(seqs)s::bigint[], %(times)s::timestamptz[], %(hashes)s::text[], %(bodies)s::jsonb[]
    ) AS b(seq, time, hash, body)
), inserted AS (
    INSERT INTO {t} (writer, seq, time, hash, body)
    SELECT %(writer)s, seq, time, hash, body FROM batch
    ON CONFLICT (writer, seq, time) DO NOTHING
    RETURNING seq
), head AS (
    INSERT INTO {heads} AS h (writer, seq, hash) VALUES (%(writer)s, %(head_seq)s, %(head_hash)s)
    ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = now()
)
SELECT b.seq FROM batch b JOIN {t} x ON x.writer = %(writer)s AND x.seq = b.seq
WHERE x.hash <> b.hash ORDER BY b.seq
"""


def one_line(error: BaseException) -> str:
    """libpq messages run over several lines; the first says what happened."""
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


# The partitions for now and the next period, ahead of the records that need them.
_PARTITIONS_AHEAD: Final = (
    "SELECT {add_partitions}(%(now)s, "
    "%(now)s + (SELECT ('1 ' || period)::interval FROM {settings}))"
)


class PostgresSink:
    def __init__(self, target: PostgresTarget, writer_id: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._target = target
        self._clock = clock
        self._writer = writer_id
        self.description = f"{target.describe()} (writer {writer_id})"
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._insert = statement(_INSERT, target.table)
        self._lock = f"jitgate-audit-writer:{target.table}:{writer_id}"

    async def _connect(self) -> psycopg.AsyncConnection[TupleRow]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._target.conninfo,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name=f"jitgate-audit-{self._writer}"[:63],
                )
            except psycopg.Error as error:
                raise AuditWriteError(
                    f"cannot connect to the {self.description}: {one_line(error)}"
                ) from error
        return self._conn

    async def open(self) -> SinkState:
        try:
            conn = await self._connect()
            await ensure_schema(conn, self._target)
            await conn.execute(
                statement(_PARTITIONS_AHEAD, self._target.table), {"now": self._clock.now()}
            )
            return await self._state(conn)
        except psycopg.Error as error:
            raise AuditWriteError(
                f"cannot open the {self.description}: {one_line(error)}"
            ) from error

    async def discard(self) -> None:
        pass  # the failed batch's transaction rolled back

    async def recover(self) -> SinkState:
        await self._drop()
        return await self.open()

    async def _state(self, conn: psycopg.AsyncConnection[TupleRow]) -> SinkState:
        cursor = await conn.execute(
            statement(
                "SELECT seq, hash FROM {t} WHERE writer = %s ORDER BY seq DESC LIMIT 1",
                self._target.table,
            ),
            [self._writer],
        )
        last = await cursor.fetchone()
        head = ChainHead(int(last[0]), str(last[1])) if last else None
        cursor = await conn.execute(
            statement("SELECT seq, hash FROM {heads} WHERE writer = %s", self._target.table),
            [self._writer],
        )
        witness = await cursor.fetchone()
        repaired: dict[str, Any] | None = None
        if witness is not None and int(witness[0]) > (head.seq if head else 0):
            # Acknowledged records are gone. Say so in the chain before carrying on.
            repaired = {
                "missing": {"from": (head.seq if head else 0) + 1, "to": int(witness[0])},
                "witness": str(witness[1]),
            }
            logger.error(
                "Audit table %s lost records %s of writer %s that were acknowledged",
                self._target.table,
                repaired["missing"],
                self._writer,
            )
        return SinkState(head, repaired)

    async def write(self, records: Sequence[Linked], *, end_segment: bool = False) -> None:
        if not records:
            return
        params = {
            "writer": self._writer,
            "seqs": [r.seq for r in records],
            "times": [parse_time(r.record["time"]) for r in records],
            "hashes": [r.hash for r in records],
            "bodies": [r.line[:-1].decode() for r in records],
            "head_seq": records[-1].seq,
            "head_hash": records[-1].hash,
        }
        try:
            await self._store(params)
        except psycopg.OperationalError as error:
            # The commit may have happened; storing is idempotent, so try once more.
            logger.warning(
                "Audit write to %s failed (%s); retrying", self.description, one_line(error)
            )
            await self._drop()
            try:
                await self._store(params)
            except psycopg.Error as retry_error:
                raise AuditWriteError(
                    f"cannot write to the {self.description}: {one_line(retry_error)}"
                ) from retry_error
        except psycopg.Error as error:
            raise AuditWriteError(
                f"cannot write to the {self.description}: {one_line(error)}"
            ) from error

    async def _store(self, params: Mapping[str, Any]) -> None:
        try:
            await self._insert_batch(params)
        except psycopg.errors.CheckViolation as error:
            if error.diag.table_name != self._target.table:
                raise
            # No partition for some record's time yet (a new period, a clock far off):
            # make the partitions the batch needs and store it again.
            conn = await self._connect()
            await conn.execute(
                statement("SELECT {add_partitions}(%s, %s)", self._target.table),
                [min(params["times"]), max(params["times"])],
            )
            await self._insert_batch(params)

    async def _insert_batch(self, params: Mapping[str, Any]) -> None:
        conn = await self._connect()
        async with conn.transaction():
            # One batch of a writer at a time, its insert seeing every earlier one: with the
            # clash check, (writer, seq) stays unique although the partitioned table's key
            # must hold the record time too. A lock of the transaction, not the session, so
            # a connection that died unnoticed holds nothing.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [self._lock]
            )
            cursor = await conn.execute(self._insert, params)
            clashes = await cursor.fetchall()
            if clashes:
                # Raising inside the transaction rolls the whole batch back.
                raise AuditWriteError(
                    f"record seq {clashes[0][0]} of writer {self._writer} is already stored in "
                    f"the {self._target.describe()} with a different hash; two processes are "
                    "writing as the same writer, or the table was altered"
                )

    def rotation_due(self, now: dt.datetime) -> Mapping[str, Any] | None:
        return None  # a table has no segments

    async def prune_plan(self, now: dt.datetime) -> PrunePlan | None:
        # Rows are never deleted: whole partitions past retention are dropped by another
        # role than the writers' (`jitgate audit prune`, `pgprune`).
        return None

    async def prune(self, plan: PrunePlan, seq: int) -> None:
        raise AssertionError("writers never prune a PostgreSQL audit table")

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        await self._drop()
