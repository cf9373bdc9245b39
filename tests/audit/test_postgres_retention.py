"""Retention and legal hold of the PostgreSQL sink, against a real server and real roles.

Three roles as the README sets them up: the table's owner (sets retention, legal holds),
the writers' role (appends only) and the pruning role (drops whole expired partitions,
nothing else). Records are written with clocks days in the past, so the database's own
`now()` finds their partitions past retention, as it would in production.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jitgate.audit import AuditWriteError, open_audit_writer, pgschema
from jitgate.audit import filelayout as layout
from jitgate.audit.chain import ChainHead, link
from jitgate.audit.pgprune import grants
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event, write_log
from .test_tlog_writer import DEPLOYMENT

pytestmark = pytest.mark.postgres
DAY = dt.timedelta(days=1)
run = asyncio.run


@pytest.fixture
def roles(postgres: Any, pg_table: str) -> Iterator[dict[str, str]]:
    """The writers' and the pruning role, made for this table, with the README's GRANTs."""
    suffix = uuid.uuid4().hex[:8]
    made = {"writer": f"jg_writer_{suffix}", "pruner": f"jg_pruner_{suffix}"}
    for role in made.values():
        postgres.server.psql(f"CREATE ROLE {role} LOGIN")
    yield made
    with postgres.admin() as conn:
        for role in made.values():
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def urls(postgres: Any, pg_table: str, roles: dict[str, str]) -> dict[str, str]:
    def url(user: str) -> str:
        base = postgres.server.url("audit", user)
        return f"{base}?table={pg_table}"

    return {"owner": url("jitgate"), **{name: url(role) for name, role in roles.items()}}


@pytest.fixture
def checkpoint_key(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.key"
    path.write_text(DEPLOYMENT.skey + "\n")
    return path


@pytest.fixture
def verifier_key(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.pub"
    path.write_text(DEPLOYMENT.verifier.vkey + "\n")
    return path


async def set_up(
    postgres: Any, urls: dict[str, str], roles: dict[str, str], pg_table: str, retention: str
) -> None:
    """The owner creates the table with its settings, then grants the two roles."""
    now = ManualClock(dt.datetime.now(dt.UTC))
    await write_log(f"{urls['owner']}&retention={retention}&partition=day", 0, clock=now)
    with connect(urls["owner"]) as owner:
        for line in grants(pg_table, writer=roles["writer"], pruner=roles["pruner"]):
            owner.execute(line)


async def write_days(url: str, writer_id: str, days: int, per_day: int = 4) -> None:
    """Records from `days` days ago until now, `per_day` a day, signed with checkpoints."""
    now = dt.datetime.now(dt.UTC)
    clock = ManualClock(now - days * DAY)
    async with open_audit_writer(
        url,
        writer_id=writer_id,
        key=KEY,
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
    ) as writer:
        for i in range(days * per_day):
            await writer.append(sample_event(i))
            clock.advance(DAY / per_day)


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection as the URL's role (without jitgate's options)."""
    return psycopg.connect(url.split("?")[0], autocommit=True)


def partitions(postgres: Any, table: str) -> list[str]:
    with postgres.admin() as conn:
        rows = conn.execute(f"SELECT name FROM {table}_partitions ORDER BY lower").fetchall()
    return [name for (name,) in rows]


def first_seq(postgres: Any, table: str, writer: str) -> int:
    with postgres.admin() as conn:
        row = conn.execute(f"SELECT min(seq) FROM {table} WHERE writer = %s", [writer]).fetchone()
    assert row is not None
    return int(row[0])


def test_pruning_keeps_verify_and_proofs_green(
    cli: Any,
    postgres: Any,
    pg_table: str,
    roles: dict[str, str],
    urls: dict[str, str],
    key_file: Path,
    checkpoint_key: Path,
    verifier_key: Path,
    tmp_path: Path,
) -> None:
    run(set_up(postgres, urls, roles, pg_table, "3d"))
    run(write_days(urls["writer"], "w0", 6))
    run(write_days(urls["writer"], "w1", 5, per_day=3))
    before = partitions(postgres, pg_table)
    checks = ["--key-file", key_file, "--verifier-key", verifier_key]
    assert cli("verify", "--audit", urls["writer"], *checks).code == 0

    pruner = ["--audit", urls["pruner"], "--key-file", key_file, "--checkpoint-key", checkpoint_key]
    result = cli("prune", *pruner)
    assert result.code == 0, result.err
    kept = partitions(postgres, pg_table)
    dropped = [name for name in before if name not in kept]
    assert dropped and dropped == before[: len(dropped)]  # the oldest, and only those
    assert f"pruning partition {dropped[0]}: records from " in result.out
    assert "Pruned " in result.out and "recorded at pruner:1" in result.out
    w0_starts = first_seq(postgres, pg_table, "w0")
    assert w0_starts > 1
    assert f"  writer w0: records seq 1-{w0_starts - 1}" in result.out.splitlines()

    result = cli("verify", "--audit", urls["writer"], *checks)
    assert result.code == 0, result.out
    assert f"ok      w0: {24 - w0_starts + 1} records, seq {w0_starts}-24" in result.out
    assert (
        f"ok      w0: signed checkpoint covers records 1-24 (records 1-{w0_starts - 1} pruned, "
        "their tree state from the pruning record)"
    ) in result.out
    assert "ok      pruner: 1 records, seq 1-1" in result.out

    proof = tmp_path / "kept.proof"
    assert cli("prove", "--audit", urls["writer"], f"w0:{w0_starts + 1}", "--out", proof).code == 0
    proven = cli("verify-proof", proof, "--verifier-key", verifier_key)
    assert proven.code == 0, proven.out
    gone = cli("prove", "--audit", urls["writer"], "w0:1")
    assert gone.code == 1 and f"record 1 was pruned (records 1-{w0_starts - 1})" in gone.err

    # A later run prunes further, from the anchors of the first: the owner shortens retention.
    run(write_log(f"{urls['owner']}&retention=1d", 0, writer_id="owner"))
    assert cli("prune", *pruner).code == 0
    assert first_seq(postgres, pg_table, "w0") > w0_starts
    result = cli("verify", "--audit", urls["writer"], *checks)
    assert result.code == 0, result.out
    assert "ok      pruner: 2 records, seq 1-2" in result.out


def test_deleting_the_oldest_partition_without_a_pruning_record_is_named(
    cli: Any,
    postgres: Any,
    pg_table: str,
    roles: dict[str, str],
    urls: dict[str, str],
    key_file: Path,
) -> None:
    run(set_up(postgres, urls, roles, pg_table, "3d"))
    run(write_days(urls["writer"], "w0", 6))
    with postgres.admin() as conn:
        row = conn.execute(f"SELECT tableoid::regclass::text FROM {pg_table} WHERE seq = 1")
        (oldest,) = row.fetchone() or ("",)
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="no pruning record names")
    with connect(urls["pruner"]) as pruner, refused:
        pruner.execute(f"SELECT {pg_table}_drop_partition(%s)", [oldest])
    with postgres.admin() as conn:  # a superuser drops it anyway
        conn.execute(f"DROP TABLE {oldest}")
    result = cli("verify", "--audit", urls["writer"], "--key-file", key_file)
    assert result.code == 1
    starts = first_seq(postgres, pg_table, "w0")
    assert (
        f"FAILED  w0: {'record seq 1 was' if starts == 2 else f'records seq 1-{starts - 1} were'}"
        f" deleted: the log starts at seq {starts} (table {pg_table} row (writer w0, seq "
        f"{starts})) and no pruning record accounts for the earlier ones"
    ) in result.out.splitlines()


def test_a_held_log_is_not_pruned_and_the_hold_is_recorded(
    cli: Any,
    postgres: Any,
    pg_table: str,
    roles: dict[str, str],
    urls: dict[str, str],
    key_file: Path,
) -> None:
    run(set_up(postgres, urls, roles, pg_table, "2d"))
    run(write_days(urls["writer"], "w0", 5))
    before = partitions(postgres, pg_table)
    held = cli("hold", "--audit", urls["owner"], "--reason", "case 2026-17", "--key-file", key_file)
    assert held.code == 0, held.err
    assert "Legal hold 1 set on the PostgreSQL table" in held.out

    result = cli("prune", "--audit", urls["pruner"], "--key-file", key_file)
    assert result.code == 0, result.err
    assert result.out.startswith(f"Nothing pruned: the PostgreSQL table {pg_table} at ")
    assert "is under legal hold.\n  hold 1: case 2026-17 (by jitgate, " in result.out
    assert partitions(postgres, pg_table)[: len(before)] == before
    held_off = pytest.raises(psycopg.errors.InsufficientPrivilege, match="under legal hold")
    with connect(urls["pruner"]) as pruner, held_off:
        pruner.execute(f"SELECT {pg_table}_drop_partition(%s)", [before[0]])
    # Only the owner sets and releases holds.
    refused = cli("release", "--audit", urls["pruner"], "--reason", "done", "--writer", "p2")
    assert refused.code == 2 and refused.one_sentence_error, refused
    assert "only the owner of the PostgreSQL table" in refused.err
    assert f"releases legal holds; {roles['pruner']} may not" in refused.err

    released = cli("release", "--audit", urls["owner"], "--reason", "case closed")
    assert released.code == 0, released.err
    records = json.loads(
        cli(
            "query",
            "--audit",
            urls["owner"],
            "--type",
            "audit.*",
            "--writer",
            "admin",
            "-o",
            "json",
        ).out
    )
    assert [(r["type"], r["reason"]) for r in records] == [
        ("audit.held", "case 2026-17"),
        ("audit.released", "case closed"),
    ]
    assert records[0]["context"] == {"hold": 1, "by": "jitgate"}
    assert cli("prune", "--audit", urls["pruner"], "--key-file", key_file).code == 0
    assert partitions(postgres, pg_table)[0] != before[0]


def test_the_writer_role_cannot_delete_update_or_drop(
    cli: Any, postgres: Any, pg_table: str, roles: dict[str, str], urls: dict[str, str]
) -> None:
    run(set_up(postgres, urls, roles, pg_table, "2d"))
    run(write_days(urls["writer"], "w0", 4))
    oldest = partitions(postgres, pg_table)[0]
    with connect(urls["writer"]) as writer:
        for statement in (
            f"DELETE FROM {pg_table} WHERE seq = 1",
            f"UPDATE {pg_table} SET body = body WHERE seq = 1",
            f"TRUNCATE {pg_table}",
            f"DROP TABLE {oldest}",
            f"DELETE FROM {oldest}",
            f"ALTER TABLE {pg_table} DETACH PARTITION {oldest}",
            f"SELECT {pg_table}_drop_partition('{oldest}')",
            f"UPDATE {pg_table}_settings SET retention = interval '1 second'",
            f"DELETE FROM {pg_table}_checkpoints",
            f"INSERT INTO {pg_table}_holds (reason) VALUES ('x')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                writer.execute(statement)
    # The pruning role drops whole expired partitions through its function, nothing else.
    with connect(urls["pruner"]) as pruner:
        for statement in (
            f"DELETE FROM {pg_table} WHERE seq = 1",
            f"DROP TABLE {oldest}",
            f"SELECT {pg_table}_drop_partition('{partitions(postgres, pg_table)[-1]}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                pruner.execute(statement)
    # Nor may a writer set retention through its URL.
    opened = cli("verify", "--audit", urls["writer"])
    assert opened.code == 0
    with pytest.raises(AuditWriteError, match="only the owner of the audit table"):
        run(write_log(f"{urls['writer']}&retention=1h", 0, writer_id="w9"))


def test_an_unpartitioned_table_is_migrated_with_its_records(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path
) -> None:
    """A table of schema version 2 (one plain table) with two months of records."""
    head: ChainHead | None = None
    with connect(pg_url) as owner:
        owner.execute(
            pgschema.statement(
                "CREATE TABLE {versions} (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                pg_table,
            )
        )
        for version, statements in pgschema.MIGRATIONS[:2]:
            for text in statements:
                owner.execute(pgschema.statement(text, pg_table))
            owner.execute(f"INSERT INTO {pg_table}_schema_version VALUES ({version})")
        for i in range(30):
            body = sample_event(i).body(START + i * 2 * DAY)
            linked = link(body, writer="w0", head=head, key=KEY)
            owner.execute(
                f"INSERT INTO {pg_table} (writer, seq, time, hash, body) "
                "VALUES (%s, %s, %s, %s, %s)",
                ["w0", linked.seq, body["time"], linked.hash, linked.line.decode()],
            )
            head = linked.head
    run(write_log(pg_url, 0))  # opened by this jitgate: migrated
    assert len(partitions(postgres, pg_table)) >= 2
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 0, result.out
    assert "ok      w0: 30 records, seq 1-30" in result.out


def test_prune_refuses_file_logs_and_an_unreachable_database(
    cli: Any, postgres: Any, file_url: str
) -> None:
    result = cli("prune", "--audit", file_url)
    assert result.code == 2 and result.one_sentence_error
    assert "a file log is pruned by its own writers" in result.err
    url = postgres.url("audit_x").replace(f":{postgres.server.port}/", ":1/")
    for command in (["prune"], ["hold", "--reason", "r"], ["release", "--reason", "r"]):
        result = cli(*command, "--audit", url)
        assert result.code == 2 and result.one_sentence_error, result
        assert "cannot connect to the PostgreSQL table audit_x at 127.0.0.1:1/audit" in result.err


def test_a_file_log_under_a_recorded_hold_is_not_pruned(
    cli: Any, file_url: str, log_dir: Path, key_file: Path
) -> None:
    run(write_log(file_url, 3))
    assert cli("hold", "--audit", file_url, "--reason", "case 9", "--key-file", key_file).code == 0
    hold = json.loads((log_dir / layout.HOLD_FILE).read_text())
    assert hold["reason"] == "case 9"
    assert cli("verify", "--audit", file_url, "--key-file", key_file).code == 0
    assert cli("release", "--audit", file_url, "--reason", "closed").code == 0
    assert not (log_dir / layout.HOLD_FILE).exists()
    records = json.loads(
        cli(
            "query", "--audit", file_url, "--writer", "admin", "--type", "audit.*", "-o", "json"
        ).out
    )
    assert [r["type"] for r in records] == ["audit.held", "audit.released"]


def test_the_readme_shows_the_grants_the_tests_use() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for line in grants("jitgate_audit", writer="jitgate_writer", pruner="jitgate_pruner"):
        assert line in readme.splitlines(), line
