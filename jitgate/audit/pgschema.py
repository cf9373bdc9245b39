"""The PostgreSQL schema of an audit table, and its versioned migrations.

One append-only table per deployment (`<table>`), its head witness (`<table>_heads`) and
the applied migrations (`<table>_schema_version`). With a checkpoint key, each writer's
checkpoint history (`<table>_checkpoints`, one `tlog.CheckpointLink` per tree size signed,
append-only like the records) and its last signed checkpoint with the tree state it was
signed from (`<table>_checkpoint`). Migrations run under an advisory lock, so replicas
starting together apply each one exactly once.
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from jitgate.audit.errors import AuditReadError, AuditWriteError

# Each migration is a list of statements; `{t}`, `{heads}` and `{refuse}` are identifiers.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE {t} (
                writer text NOT NULL,
                seq bigint NOT NULL CHECK (seq > 0),
                time timestamptz NOT NULL,
                hash text NOT NULL,
                body jsonb NOT NULL,
                prev text GENERATED ALWAYS AS (body ->> 'prev') STORED,
                mac text GENERATED ALWAYS AS (body ->> 'mac') STORED,
                type text GENERATED ALWAYS AS (body ->> 'type') STORED,
                namespace text GENERATED ALWAYS AS (body ->> 'namespace') STORED,
                actor_user text GENERATED ALWAYS AS (body -> 'actor' ->> 'user') STORED,
                verb text GENERATED ALWAYS AS (body -> 'action' ->> 'verb') STORED,
                request text GENERATED ALWAYS AS (body ->> 'request') STORED,
                grant_name text GENERATED ALWAYS AS (body ->> 'grant') STORED,
                PRIMARY KEY (writer, seq)
            )""",
            "CREATE INDEX ON {t} (time)",
            "CREATE INDEX ON {t} (actor_user, time)",
            "CREATE INDEX ON {t} (namespace, time)",
            "CREATE INDEX ON {t} (type, time)",
            "CREATE INDEX ON {t} (verb, time)",
            "CREATE INDEX ON {t} (request)",
            "CREATE INDEX ON {t} (grant_name)",
            """CREATE TABLE {heads} (
                writer text PRIMARY KEY,
                seq bigint NOT NULL,
                hash text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )""",
            """CREATE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit table % is append-only: % is refused',
                    TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
            END $$""",
            "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION {refuse}()",
            "CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {t} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()",
            "COMMENT ON TABLE {t} IS 'jitgate audit log: append-only, hash-chained per writer'",
        ),
    ),
    (
        2,
        (
            """CREATE TABLE {checkpoints} (
                writer text NOT NULL,
                size bigint NOT NULL CHECK (size >= 0),
                link text NOT NULL,
                stored_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (writer, size)
            )""",
            "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {checkpoints} "
            "FOR EACH ROW EXECUTE FUNCTION {refuse}()",
            "CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {checkpoints} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()",
            """CREATE TABLE {checkpoint} (
                writer text PRIMARY KEY,
                tree text NOT NULL,
                checkpoint text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )""",
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
CHECKPOINTS_VERSION: Final = 2  # the first version with the checkpoint tables


def names(table: str) -> dict[str, sql.Identifier]:
    return {
        "t": sql.Identifier(table),
        "heads": sql.Identifier(f"{table}_heads"),
        "versions": sql.Identifier(f"{table}_schema_version"),
        "refuse": sql.Identifier(f"{table}_refuse_change"),
        "checkpoints": sql.Identifier(f"{table}_checkpoints"),
        "checkpoint": sql.Identifier(f"{table}_checkpoint"),
    }


def statement(text: str, table: str) -> sql.Composed:
    return sql.SQL(text).format(**names(table))


async def ensure_schema(conn: psycopg.AsyncConnection[TupleRow], table: str) -> None:
    """Create or migrate the table; refuse one made by a newer jitgate."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"jitgate-audit:{table}"]
        )
        await conn.execute(
            statement(
                "CREATE TABLE IF NOT EXISTS {versions} ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                table,
            )
        )
        cursor = await conn.execute(
            statement("SELECT coalesce(max(version), 0) FROM {versions}", table)
        )
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise AuditWriteError(
                f"the audit table {table} has schema version {current}, newer than this "
                f"jitgate understands ({SCHEMA_VERSION}); upgrade jitgate"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for text in statements:
                await conn.execute(statement(text, table))
            await conn.execute(
                statement("INSERT INTO {versions} (version) VALUES (%s)", table), [version]
            )


def check_schema(conn: psycopg.Connection[TupleRow], table: str, where: str) -> int:
    """For readers: the table must exist and be a version this jitgate can read; its version."""
    cursor = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        [f'"{table}"', f'"{table}_schema_version"'],
    )
    row = cursor.fetchone()
    if not row or not row[0] or not row[1]:
        raise AuditReadError(f"there is no jitgate audit table {table} in {where}")
    version_row = conn.execute(
        statement("SELECT coalesce(max(version), 0) FROM {versions}", table)
    ).fetchone()
    version = int(version_row[0]) if version_row else 0
    if version > SCHEMA_VERSION:
        raise AuditReadError(
            f"the audit table {table} has schema version {version}, newer than this jitgate "
            f"understands ({SCHEMA_VERSION}); upgrade jitgate"
        )
    return version
