"""Reading a PostgreSQL audit table, for verification and for queries.

Rows are streamed through server-side cursors, so verifying or exporting a large table
holds only a few thousand rows in memory.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from jitgate.audit.chain import PRUNED
from jitgate.audit.errors import AuditReadError
from jitgate.audit.pgschema import (
    CHECKPOINTS_VERSION,
    PARTITIONS_VERSION,
    check_schema,
    names,
    statement,
)
from jitgate.audit.pgsink import CONNECT_TIMEOUT, one_line
from jitgate.audit.pruning import Anchor
from jitgate.audit.query import Selection
from jitgate.audit.reader import StoredRecord
from jitgate.audit.url import PostgresTarget
from jitgate.audit.verify import Entry, Item, SegmentEnd, Witness
from jitgate.core.clock import parse_time

_ITERSIZE: Final = 2000
_cursor_names = itertools.count()
# A loose index scan: one probe of the primary key per writer, not a pass over all rows.
_WRITERS: Final = """
WITH RECURSIVE w AS (
    SELECT min(writer) AS writer FROM {t}
    UNION ALL
    SELECT (SELECT min(writer) FROM {t} WHERE writer > w.writer) FROM w WHERE w.writer IS NOT NULL
)
SELECT writer FROM w WHERE writer IS NOT NULL
"""
_COLUMNS: Final = "SELECT writer, seq, time, hash, body FROM {t}"


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def where_clause(selection: Selection) -> tuple[sql.Composable, list[Any]]:
    """The selection as SQL over the indexed columns."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []

    def add(text: str, *values: Any) -> None:
        clauses.append(sql.SQL(text))
        params.extend(values)

    if selection.since is not None:
        add("time >= %s", selection.since)
    if selection.until is not None:
        add("time < %s", selection.until)
    for column, values in (
        ("actor_user", selection.users),
        ("namespace", selection.namespaces),
        ("verb", selection.verbs),
        ("grant_name", selection.grants),
        ("request", selection.requests),
        ("writer", selection.writers),
    ):
        if values:
            add(f"{column} = ANY(%s)", list(values))
    if selection.types:
        exact = [t for t in selection.types if not t.endswith(".*")]
        prefixes = [_like_prefix(t[:-1]) for t in selection.types if t.endswith(".*")]
        add("(type = ANY(%s) OR type LIKE ANY(%s))", exact, prefixes)
    elif not selection.internal:
        add("coalesce(type, '') NOT LIKE %s", _like_prefix("audit."))
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


def connect_to_read(
    target: PostgresTarget, application_name: str = "jitgate-audit"
) -> psycopg.Connection[TupleRow]:
    """An autocommit connection to `target` for reading or administering its table;
    `AuditReadError` saying why when it cannot be made."""
    try:
        return psycopg.connect(
            target.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=application_name,
        )
    except psycopg.Error as error:
        raise AuditReadError(
            f"cannot connect to the {target.describe()}: {one_line(error)}"
        ) from error


class PostgresLogReader:
    def __init__(self, target: PostgresTarget) -> None:
        self._target = target
        self._table = target.table
        self.description = target.describe()
        self._conn = connect_to_read(target)
        try:
            self._version = check_schema(self._conn, self._table, self.description)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def _fail(self, error: psycopg.Error) -> AuditReadError:
        return AuditReadError(f"cannot read the {self.description}: {one_line(error)}")

    def _stream(self, query: sql.Composed, params: list[Any]) -> Iterator[TupleRow]:
        try:
            with self._conn.transaction():
                cursor = self._conn.cursor(name=f"jitgate_audit_{next(_cursor_names)}")
                cursor.itersize = _ITERSIZE
                with cursor:
                    cursor.execute(query, params)
                    yield from cursor
        except psycopg.Error as error:
            raise self._fail(error) from error

    def _where(self, writer: str, seq: int) -> str:
        return f"table {self._table} row (writer {writer}, seq {seq})"

    # -- verification -------------------------------------------------------------------

    def writers(self) -> list[str]:
        try:
            rows = self._conn.execute(statement(_WRITERS, self._table)).fetchall()
        except psycopg.Error as error:
            raise self._fail(error) from error
        return [str(row[0]) for row in rows]

    def chain(self, writer: str) -> Iterator[Item]:
        query = statement(_COLUMNS + " WHERE writer = %s ORDER BY seq", self._table)
        for _, seq, time, hash_, body in self._stream(query, [writer]):
            yield self._entry(writer, seq, time, hash_, body)
        yield SegmentEnd(f"table {self._table}", last=True)

    def _entry(self, writer: str, seq: int, time: dt.datetime, hash_: str, body: Any) -> Entry:
        where = self._where(writer, seq)
        if not isinstance(body, dict):
            return Entry(where, None, "its body is not a JSON object")
        error = None
        if body.get("hash") != hash_:
            error = "its hash column differs from the hash in its body"
        else:
            try:
                if parse_time(str(body.get("time"))) != time:
                    error = "its time column differs from the time in its body"
            except ValueError:
                pass  # the body's own hash check reports it
        return Entry(where, body, error)

    def witnesses(self, writer: str) -> tuple[list[Witness], list[str]]:
        try:
            row = self._conn.execute(
                statement("SELECT seq, hash FROM {heads} WHERE writer = %s", self._table),
                [writer],
            ).fetchone()
        except psycopg.Error as error:
            raise self._fail(error) from error
        if row is None:
            return [], []
        return [Witness(int(row[0]), str(row[1]), f"heads table {self._table}_heads")], []

    def is_live(self, writer: str) -> bool:
        return False  # rows appear whole: there is never a half-written record to excuse

    def checkpoint(self, writer: str) -> bytes | None:
        if self._version < CHECKPOINTS_VERSION:
            return None  # written by a jitgate that signed no checkpoints here
        try:
            row = self._conn.execute(
                statement("SELECT checkpoint FROM {checkpoint} WHERE writer = %s", self._table),
                [writer],
            ).fetchone()
        except psycopg.Error as error:
            raise self._fail(error) from error
        return str(row[0]).encode() if row is not None else None

    def checkpoint_history(self, writer: str) -> list[bytes]:
        if self._version < CHECKPOINTS_VERSION:
            return []
        query = statement(
            "SELECT link FROM {checkpoints} WHERE writer = %s ORDER BY size", self._table
        )
        return [str(link).encode() for (link,) in self._stream(query, [writer])]

    def pruning_records(self) -> list[Mapping[str, Any]]:
        if self._version < PARTITIONS_VERSION:
            return []  # nothing was ever pruned
        query = statement(
            "SELECT body FROM {t} WHERE type = %s ORDER BY time, writer, seq", self._table
        )
        return [body for (body,) in self._stream(query, [PRUNED]) if isinstance(body, dict)]

    def pruned_prefixes(self, writer: str) -> list[Anchor]:
        return []  # `pruning_records` gives them: the pruner's records, in its own chain

    # -- queries ------------------------------------------------------------------------

    def _select(self, selection: Selection, order: str, limit: int | None = None) -> sql.Composed:
        where, _ = where_clause(selection)
        query = sql.SQL(_COLUMNS).format(**names(self._table)) + where
        query += sql.SQL(f" ORDER BY {order}")
        if limit is not None:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
        return query

    def _stored(self, rows: Iterator[TupleRow], selection: Selection) -> Iterator[StoredRecord]:
        for writer, seq, _, _, body in rows:
            stored = StoredRecord(self._where(writer, seq), body if isinstance(body, dict) else {})
            if selection.matches(stored.record):
                yield stored

    def records(self, selection: Selection) -> Iterator[StoredRecord]:
        _, params = where_clause(selection)
        rows = self._stream(self._select(selection, "time, writer, seq"), params)
        return self._stored(rows, selection)

    def latest(self, selection: Selection, count: int) -> list[StoredRecord]:
        _, params = where_clause(selection)
        query = self._select(selection, "time DESC, writer DESC, seq DESC", count)
        try:
            rows = self._conn.execute(query, params).fetchall()
        except psycopg.Error as error:
            raise self._fail(error) from error
        return list(self._stored(iter(reversed(rows)), selection))

    def follow(self, selection: Selection) -> _PostgresFollower:
        return _PostgresFollower(self, selection)


class _PostgresFollower:
    """Remembers the last seq seen per writer and asks for anything after it."""

    def __init__(self, reader: PostgresLogReader, selection: Selection) -> None:
        self._reader = reader
        self._selection = selection
        self._seen: dict[str, int] = {}
        query = statement("SELECT writer, max(seq) FROM {t} GROUP BY writer", reader._table)
        try:
            rows = reader._conn.execute(query).fetchall()
        except psycopg.Error as error:
            raise reader._fail(error) from error
        self._seen = {str(writer): int(seq) for writer, seq in rows}

    def poll(self) -> list[StoredRecord]:
        query = statement(
            "SELECT t.writer, t.seq, t.time, t.hash, t.body FROM {t} t "
            "LEFT JOIN unnest(%s::text[], %s::bigint[]) AS k(writer, seq) ON t.writer = k.writer "
            "WHERE t.seq > coalesce(k.seq, 0) ORDER BY t.time, t.writer, t.seq",
            self._reader._table,
        )
        try:
            rows = self._reader._conn.execute(
                query, [list(self._seen), list(self._seen.values())]
            ).fetchall()
        except psycopg.Error as error:
            raise self._reader._fail(error) from error
        found: list[StoredRecord] = []
        for writer, seq, _, _, body in rows:
            self._seen[str(writer)] = max(self._seen.get(str(writer), 0), int(seq))
            stored = StoredRecord(
                self._reader._where(writer, seq), body if isinstance(body, dict) else {}
            )
            if self._selection.matches(stored.record):
                found.append(stored)
        return found
