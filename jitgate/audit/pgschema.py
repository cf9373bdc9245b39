"""The PostgreSQL schema of an audit table, and its versioned migrations.

One append-only table per deployment (`<table>`), partitioned by record time (one
partition a day or a month: `<table>_p<YYYYMMDD>`, listed in `<table>_partitions`), its
head witness (`<table>_heads`) and the applied migrations (`<table>_schema_version`). With
a checkpoint key, each writer's checkpoint history (`<table>_checkpoints`, one
`tlog.CheckpointLink` per tree size signed, append-only like the records) and its last
signed checkpoint with the tree state it was signed from (`<table>_checkpoint`).

Retention (`pgprune`): the owner's settings (`<table>_settings`: period, retention), legal
holds (`<table>_holds`), and two SECURITY DEFINER functions, the only way other roles change
the table's shape: `<table>_add_partitions(since, until)` (writers and pruner) and
`<table>_drop_partition(name)` (the pruner only; it checks retention, holds, age order and
the pruning record itself). `pgprune.grants` gives the roles' GRANTs.

Migrations run under an advisory lock, so replicas starting together apply each one
exactly once; a table already current is opened without the lock or any DDL.
"""

from __future__ import annotations

import logging
from typing import Final

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from jitgate.audit.errors import AuditReadError, AuditWriteError
from jitgate.audit.url import PostgresTarget

logger = logging.getLogger("jitgate.audit")

_COLUMNS: Final = """
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
    grant_name text GENERATED ALWAYS AS (body ->> 'grant') STORED
"""
_INDEXES: Final = (
    "CREATE INDEX ON {t} (time)",
    "CREATE INDEX ON {t} (actor_user, time)",
    "CREATE INDEX ON {t} (namespace, time)",
    "CREATE INDEX ON {t} (type, time)",
    "CREATE INDEX ON {t} (verb, time)",
    "CREATE INDEX ON {t} (request)",
    "CREATE INDEX ON {t} (grant_name)",
)
# Creates the partitions covering [since, until] that do not exist yet, under a lock (writers
# and the pruner create them at once). SECURITY DEFINER: roles that may not create tables
# (the writer, the pruner) may still add the partitions their records need.
_ADD_PARTITIONS: Final = """
CREATE FUNCTION {add_partitions}(since timestamptz, until timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET timezone = 'UTC' AS $$
DECLARE
    per text;
    step interval;
    lo timestamptz;
    part text;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('jitgate-audit-partitions:' || {tname}, 0));
    SELECT period INTO per FROM {settings};
    step := ('1 ' || per)::interval;
    lo := date_trunc(per, since);
    IF until > lo + 400 * step THEN
        RAISE EXCEPTION 'refusing to create more than 400 partitions of the audit table % at once',
            {tname} USING ERRCODE = 'program_limit_exceeded';
    END IF;
    WHILE lo <= until LOOP
        IF NOT EXISTS (SELECT 1 FROM {partitions} p WHERE p.lower < lo + step AND p.upper > lo)
        THEN
            part := {tname} || '_p' || to_char(lo, 'YYYYMMDD');
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                part, {tname}, lo, lo + step);
            -- Row triggers come from the parent; TRUNCATE of a partition needs its own.
            EXECUTE format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON %I '
                'FOR EACH STATEMENT EXECUTE FUNCTION %I()', part, {tname} || '_refuse_change');
            INSERT INTO {partitions} (name, lower, upper) VALUES (part, lo, lo + step);
            made := made + 1;
        END IF;
        lo := lo + step;
    END LOOP;
    RETURN made;
END $$
"""
# Drops one whole partition, and only if retention allows it, no legal hold is in force, it is
# the oldest, and a pruning record stored after it names it. SECURITY DEFINER: the pruning
# role may call it, and can do nothing else to the records.
_DROP_PARTITION: Final = """
CREATE FUNCTION {drop_partition}(victim text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET timezone = 'UTC' AS $$
DECLARE
    p record;
    keep interval;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('jitgate-audit-partitions:' || {tname}, 0));
    SELECT * INTO p FROM {partitions} WHERE name = victim;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no partition % of the audit table %', victim, {tname}
            USING ERRCODE = 'undefined_table';
    END IF;
    SELECT retention INTO keep FROM {settings};
    IF keep IS NULL THEN
        RAISE EXCEPTION 'the audit table % keeps every record: it has no retention', {tname}
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p.upper > now() - keep THEN
        RAISE EXCEPTION 'partition % holds records younger than the retention of %', victim, keep
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM {holds} WHERE released_at IS NULL) THEN
        RAISE EXCEPTION 'the audit table % is under legal hold: nothing is pruned', {tname}
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM {partitions} WHERE lower < p.lower) THEN
        RAISE EXCEPTION 'partition % is not the oldest of the audit table %', victim, {tname}
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM {t} WHERE type = 'audit.pruned' AND time >= p.upper
        AND body -> 'context' -> 'partitions' ? victim
    ) THEN
        RAISE EXCEPTION 'no pruning record names partition %: record the pruning first', victim
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('DROP TABLE %I', victim);
    DELETE FROM {partitions} WHERE name = victim;
END $$
"""

# Each migration is a list of statements; names in braces are `names()`.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            "CREATE TABLE {t} (" + _COLUMNS + ", PRIMARY KEY (writer, seq))",
            *_INDEXES,
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
    (
        3,
        (
            # Partitioned by record time: retention drops whole partitions, never rows.
            "ALTER TABLE {t} RENAME TO {v2}",
            "ALTER TABLE {v2} RENAME CONSTRAINT {pkey} TO {v2_pkey}",
            "CREATE TABLE {t} (" + _COLUMNS + ", PRIMARY KEY (writer, seq, time)) "
            "PARTITION BY RANGE (time)",
            "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION {refuse}()",
            "CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {t} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()",
            "COMMENT ON TABLE {t} IS 'jitgate audit log: append-only, hash-chained per writer, "
            "partitioned by record time'",
            """CREATE TABLE {settings} (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                period text NOT NULL DEFAULT 'month' CHECK (period IN ('day', 'month')),
                retention interval CHECK (retention > interval '0')
            )""",
            "INSERT INTO {settings} DEFAULT VALUES",
            """CREATE TABLE {partitions} (
                name text PRIMARY KEY,
                lower timestamptz NOT NULL UNIQUE,
                upper timestamptz NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )""",
            """CREATE TABLE {holds} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                reason text NOT NULL,
                held_by text NOT NULL DEFAULT current_user,
                held_at timestamptz NOT NULL DEFAULT now(),
                released_by text,
                released_at timestamptz,
                release_reason text
            )""",
            _ADD_PARTITIONS,
            _DROP_PARTITION,
            "REVOKE ALL ON FUNCTION {add_partitions}(timestamptz, timestamptz) FROM PUBLIC",
            "REVOKE ALL ON FUNCTION {drop_partition}(text) FROM PUBLIC",
            "SELECT {add_partitions}(min(time), max(time)) FROM {v2} HAVING count(*) > 0",
            "INSERT INTO {t} (writer, seq, time, hash, body) "
            "SELECT writer, seq, time, hash, body FROM {v2}",
            "DROP TABLE {v2}",
            *_INDEXES,
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
CHECKPOINTS_VERSION: Final = 2  # the first version with the checkpoint tables
PARTITIONS_VERSION: Final = 3  # ... partitioned by time, with retention and legal hold


def names(table: str) -> dict[str, sql.Composable]:
    return {
        "t": sql.Identifier(table),
        "tname": sql.Literal(table),
        "pkey": sql.Identifier(f"{table}_pkey"),
        "v2": sql.Identifier(f"{table}_v2"),
        "v2_pkey": sql.Identifier(f"{table}_v2_pkey"),
        "settings": sql.Identifier(f"{table}_settings"),
        "partitions": sql.Identifier(f"{table}_partitions"),
        "holds": sql.Identifier(f"{table}_holds"),
        "add_partitions": sql.Identifier(f"{table}_add_partitions"),
        "drop_partition": sql.Identifier(f"{table}_drop_partition"),
        "heads": sql.Identifier(f"{table}_heads"),
        "versions": sql.Identifier(f"{table}_schema_version"),
        "refuse": sql.Identifier(f"{table}_refuse_change"),
        "checkpoints": sql.Identifier(f"{table}_checkpoints"),
        "checkpoint": sql.Identifier(f"{table}_checkpoint"),
    }


def statement(text: str, table: str) -> sql.Composed:
    return sql.SQL(text).format(**names(table))


async def _version(conn: psycopg.AsyncConnection[TupleRow], table: str) -> int:
    cursor = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{table}_schema_version"'])
    exists = await cursor.fetchone()
    if not exists or not exists[0]:
        return 0
    query = statement("SELECT coalesce(max(version), 0) FROM {versions}", table)
    cursor = await conn.execute(query)
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def ensure_schema(conn: psycopg.AsyncConnection[TupleRow], target: PostgresTarget) -> None:
    """Create or migrate the table, apply the URL's settings; refuse a newer jitgate's table.

    A table already at this version is left alone without a lock or any DDL, so roles that
    may only insert (`grants`) open it too.
    """
    table = target.table
    if await _version(conn, table) != SCHEMA_VERSION:
        await _migrate(conn, table)
    await _apply_settings(conn, target)


async def _migrate(conn: psycopg.AsyncConnection[TupleRow], table: str) -> None:
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
        current = await _version(conn, table)
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


async def _apply_settings(conn: psycopg.AsyncConnection[TupleRow], target: PostgresTarget) -> None:
    """The URL's `retention` and `partition`, where they differ from the table's."""
    table = target.table
    cursor = await conn.execute(
        statement(
            "SELECT period, retention, (SELECT count(*) FROM {partitions}) FROM {settings}", table
        )
    )
    row = await cursor.fetchone()
    assert row is not None, "the settings row is made by the migration"
    period, retention, partitions = str(row[0]), row[1], int(row[2])
    wanted_retention = None if target.keep_forever else target.retention or retention
    if target.partition is not None and target.partition != period:
        if partitions:
            raise AuditWriteError(
                f"the audit table {table} is partitioned by {period}; partition="
                f"{target.partition} cannot change that once it has partitions"
            )
    elif wanted_retention == retention:
        return
    try:
        await conn.execute(
            statement("UPDATE {settings} SET period = %s, retention = %s", table),
            [target.partition or period, wanted_retention],
        )
    except psycopg.errors.InsufficientPrivilege as error:
        raise AuditWriteError(
            f"only the owner of the audit table {table} sets its retention and partitions; "
            "leave retention= and partition= out of this URL"
        ) from error
    logger.info(
        "Audit table %s: partitioned by %s, retention %s",
        table,
        target.partition or period,
        wanted_retention or "forever",
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
