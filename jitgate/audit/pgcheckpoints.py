"""Checkpoints of a PostgreSQL log: `<table>_checkpoint` and `<table>_checkpoints`.

The same store as the file sink's CHECKPOINT, TREE and CHECKPOINTS (`filecheckpoints`),
behind the same `CheckpointStore` interface: `<table>_checkpoint` holds each writer's last
signed checkpoint verbatim with the Merkle tree state it was signed from, replaced in
place; `<table>_checkpoints` is the history, one `tlog.CheckpointLink` per tree size signed,
append-only (UPDATE, DELETE and TRUNCATE are refused, as on the records). Both change in
one transaction, so the history is never behind the last checkpoint.

Its own connection: checkpoints never queue behind the records' commits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from jitgate.audit.checkpointer import SavedTree
from jitgate.audit.errors import AuditWriteError
from jitgate.audit.merkle import CompactTree
from jitgate.audit.pgschema import statement
from jitgate.audit.pgsink import CONNECT_TIMEOUT, one_line
from jitgate.audit.tlog import CheckpointLink, decode_tree, encode_tree, record_leaf
from jitgate.audit.url import PostgresTarget

logger = logging.getLogger("jitgate.audit")
T = TypeVar("T")

_SAVE_LINK = (
    "INSERT INTO {checkpoints} (writer, size, link) VALUES (%s, %s, %s) "
    "ON CONFLICT (writer, size) DO NOTHING"
)
_SAVE_LATEST = (
    "INSERT INTO {checkpoint} AS c (writer, tree, checkpoint) VALUES (%s, %s, %s) "
    "ON CONFLICT (writer) DO UPDATE SET tree = excluded.tree, "
    "checkpoint = excluded.checkpoint, updated_at = now()"
)


class PostgresCheckpointStore:
    def __init__(self, target: PostgresTarget, writer_id: str) -> None:
        self._target = target
        self._writer = writer_id
        self.description = f"checkpoints of writer {writer_id} in the {target.describe()}"
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None

    def _sql(self, text: str) -> sql.Composed:
        return statement(text, self._target.table)

    async def _connected(self) -> psycopg.AsyncConnection[TupleRow]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._target.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=f"jitgate-tlog-{self._writer}"[:63],
            )
        return self._conn

    async def _run(
        self, what: str, work: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[T]]
    ) -> T:
        """`work` on the connection, made again once if it was lost."""
        for attempt in range(2):
            try:
                return await work(await self._connected())
            except psycopg.OperationalError as error:
                await self._drop()
                if attempt:
                    raise AuditWriteError(
                        f"cannot {what} in the {self._target.describe()}: {one_line(error)}"
                    ) from error
            except psycopg.Error as error:
                raise AuditWriteError(
                    f"cannot {what} in the {self._target.describe()}: {one_line(error)}"
                ) from error
        raise AssertionError("unreachable")

    async def load(self) -> SavedTree:
        async def work(conn: psycopg.AsyncConnection[TupleRow]) -> tuple[Any, Any]:
            latest = await (
                await conn.execute(
                    self._sql("SELECT tree, checkpoint FROM {checkpoint} WHERE writer = %s"),
                    [self._writer],
                )
            ).fetchone()
            link = await (
                await conn.execute(
                    self._sql(
                        "SELECT link FROM {checkpoints} WHERE writer = %s "
                        "ORDER BY size DESC LIMIT 1"
                    ),
                    [self._writer],
                )
            ).fetchone()
            return latest, link

        latest, last = await self._run("read the checkpoints", work)
        tree: CompactTree | None = None
        checkpoint: bytes | None = None
        if latest is not None:
            checkpoint = str(latest[1]).encode()
            try:
                tree = decode_tree(str(latest[0]).encode())
            except ValueError as error:  # rebuilt from the records instead
                logger.warning("Ignoring the damaged tree state in %s: %s", self.description, error)
        if last is not None:
            try:
                link = CheckpointLink.decode(str(last[0]).encode())
            except ValueError as error:
                raise AuditWriteError(f"the history of {self.description} is damaged") from error
            if tree is None or tree.size < link.tree.size:
                return SavedTree(link.tree, link.signed)
        return SavedTree(tree, checkpoint)

    async def leaves(self, first_seq: int, last_seq: int) -> list[bytes]:
        async def work(conn: psycopg.AsyncConnection[TupleRow]) -> list[TupleRow]:
            cursor = await conn.execute(
                self._sql(
                    "SELECT seq, body FROM {t} WHERE writer = %s AND seq BETWEEN %s AND %s "
                    "ORDER BY seq"
                ),
                [self._writer, first_seq, last_seq],
            )
            return await cursor.fetchall()

        leaves: list[bytes] = []
        for seq, body in await self._run("read records back", work):
            if seq != first_seq + len(leaves) or not isinstance(body, dict):
                break
            leaves.append(record_leaf(body))
        if len(leaves) != last_seq - first_seq + 1:
            raise AuditWriteError(
                f"records {first_seq}-{last_seq} of writer {self._writer} are not all in the "
                f"{self._target.describe()}"
            )
        return leaves

    async def save(self, tree: CompactTree, signed: bytes, link: CheckpointLink | None) -> None:
        async def work(conn: psycopg.AsyncConnection[TupleRow]) -> None:
            async with conn.transaction():
                if link is not None:
                    entry = [self._writer, link.tree.size, link.encode().decode()]
                    await conn.execute(self._sql(_SAVE_LINK), entry)
                await conn.execute(
                    self._sql(_SAVE_LATEST),
                    [self._writer, encode_tree(tree).decode(), signed.decode()],
                )

        await self._run("store a checkpoint", work)

    async def tree_at(self, size: int) -> CompactTree | None:
        async def work(conn: psycopg.AsyncConnection[TupleRow]) -> TupleRow | None:
            cursor = await conn.execute(
                self._sql("SELECT link FROM {checkpoints} WHERE writer = %s AND size = %s"),
                [self._writer, size],
            )
            return await cursor.fetchone()

        row = await self._run("read the checkpoint history", work)
        return CheckpointLink.decode(str(row[0]).encode()).tree if row is not None else None

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        await self._drop()
