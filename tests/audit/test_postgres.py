"""The PostgreSQL sink against a real server: append-only table, migrations, tampering."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jitgate.audit import AuditRecord, AuditWriteError, open_audit_writer
from jitgate.audit.chain import ChainHead, Linked, link, sign, stored_form
from jitgate.audit.pgschema import SCHEMA_VERSION
from jitgate.audit.pgsink import PostgresSink
from jitgate.audit.url import PostgresTarget, parse_audit_url

pytestmark = pytest.mark.postgres
Write = Callable[..., Awaitable[list[AuditRecord]]]


def row(table: str, seq: int) -> str:
    return f"table {table} row (writer w0, seq {seq})"


@pytest.fixture
async def log20(write: Write, pg_url: str) -> list[AuditRecord]:
    return await write(pg_url, 20)


async def test_an_intact_table_verifies(
    cli: Any, pg_url: str, key_file: Path, log20: list[AuditRecord]
) -> None:
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 0, result
    assert "ok      w0: 20 records, seq 1-20" in result.out


async def test_the_schema_is_versioned_and_indexed(
    postgres: Any, pg_table: str, log20: list[AuditRecord]
) -> None:
    with postgres.admin() as conn:
        versions = conn.execute(f"SELECT version FROM {pg_table}_schema_version").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [pg_table]
            ).fetchall()
        }
        key = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype = 'p'",
            [pg_table],
        ).fetchone()
    # Partitioned by record time, so the key holds the partition key; the writer's lock in
    # each batch's transaction and the clash check keep (writer, seq) unique.
    assert key == ('PRIMARY KEY (writer, seq, "time")',)
    for column in ("time", "actor_user", "namespace", "type", "verb", "request", "grant_name"):
        assert any(f"({column}" in index.replace('"', "") for index in indexes), column


async def test_reopening_continues_the_chain(
    write: Write, pg_url: str, log20: list[AuditRecord]
) -> None:
    more = await write(pg_url, 3)
    assert [r.seq for r in more] == [21, 22, 23]
    assert more[0].prev == log20[-1].hash


async def test_the_table_refuses_update_delete_and_truncate(
    postgres: Any, pg_url: str, pg_table: str, log20: list[AuditRecord]
) -> None:
    for statement in (
        f'UPDATE {pg_table} SET body = body || \'{{"reason": "nothing to see"}}\' WHERE seq = 3',
        f"DELETE FROM {pg_table} WHERE seq = 3",
        f"TRUNCATE {pg_table}",
    ):
        owner = psycopg.connect(postgres.url(), autocommit=True)  # the owner, not a superuser
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only")
        with owner, refused:
            owner.execute(statement)
    with postgres.admin() as conn:  # even the superuser, unless it turns the trigger off
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(f"DELETE FROM {pg_table}")
        assert conn.execute(f"SELECT count(*) FROM {pg_table}").fetchone() == (20,)


async def test_storing_a_record_again_is_a_no_op_but_a_different_one_is_refused(
    postgres: Any, pg_url: str, pg_table: str, log20: list[AuditRecord]
) -> None:
    with postgres.admin() as conn:
        found = conn.execute(f"SELECT body FROM {pg_table} WHERE seq = 5").fetchone()
    assert found is not None
    again = Linked(found[0], stored_form(found[0]) + b"\n")
    different = link({"type": "x.y", "time": log20[4].time}, writer="w0", head=None, key=None)
    target = parse_audit_url(pg_url)
    assert isinstance(target, PostgresTarget)
    sink = PostgresSink(target, "w0")
    try:
        await sink.open()
        await sink.write([again])  # a re-delivery: nothing happens
        with pytest.raises(AuditWriteError, match=r"seq 1 .* already stored .* different hash"):
            await sink.write([different])
    finally:
        await sink.aclose()
    with postgres.admin() as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg_table}").fetchone() == (20,)


async def test_two_processes_writing_as_one_writer_cannot_both_store_a_seq(
    postgres: Any, pg_url: str, pg_table: str, log20: list[AuditRecord]
) -> None:
    """The key holds the record time (partitions); a seq is still stored once only."""
    target = parse_audit_url(pg_url)
    assert isinstance(target, PostgresTarget)
    sinks = [PostgresSink(target, "w0"), PostgresSink(target, "w0")]
    head = ChainHead(log20[-1].seq, log20[-1].hash)
    rivals = [
        link({"type": "x.y", "time": f"2026-11-2{i}T00:00:00.000000Z"}, writer="w0", head=head,
             key=None)
        for i in range(2)
    ]  # fmt: skip
    try:
        for sink in sinks:
            await sink.open()
        results = await asyncio.gather(
            *(sink.write([rival]) for sink, rival in zip(sinks, rivals, strict=True)),
            return_exceptions=True,
        )
    finally:
        for sink in sinks:
            await sink.aclose()
    refused = [r for r in results if isinstance(r, AuditWriteError)]
    assert len(refused) == 1 and "already stored" in str(refused[0]), results
    with postgres.admin() as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg_table} WHERE seq = 21").fetchone() == (1,)


async def test_concurrent_appends_share_transactions(pg_url: str, event: Any) -> None:
    async with open_audit_writer(pg_url, writer_id="w0", maintenance_interval=None) as writer:
        records = await asyncio.gather(*(writer.append(event(i)) for i in range(64)))
    assert sorted(r.seq for r in records) == list(range(1, 65))


async def test_an_unreachable_database_fails_appends_and_marks_the_writer_unhealthy(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, event: Any
) -> None:
    async with open_audit_writer(pg_url, writer_id="w0", maintenance_interval=None) as writer:
        await writer.append(event(0))
        assert writer.healthy
        with postgres.admin() as conn:  # the table is gone: every write now fails
            conn.execute(f"ALTER TABLE {pg_table} RENAME TO {pg_table}_away")
        results = await asyncio.gather(
            *(writer.append(event(i)) for i in range(1, 4)), return_exceptions=True
        )
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert not writer.healthy
        assert writer.last_error is results[0]
        assert "cannot write to the PostgreSQL table" in str(writer.last_error)
        with postgres.admin() as conn:
            conn.execute(f"ALTER TABLE {pg_table}_away RENAME TO {pg_table}")
        record = await writer.append(event(5))
        assert writer.healthy and writer.last_error is None
    # The recovery is on the record, right before the first append that worked again.
    assert record.seq == 3
    result = cli("query", "--audit", pg_url, "--type", "audit.recovered", "-o", "json")
    (recovered,) = json.loads(result.out)
    assert recovered["seq"] == 2
    assert "cannot write to the PostgreSQL table" in recovered["context"]["error"]
    assert cli("verify", "--audit", pg_url).code == 0


# -- tampering by someone with superuser access ----------------------------------------


async def test_an_edited_row_is_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(
        f"""UPDATE {pg_table} SET body = jsonb_set(body, '{{actor,user}}', '"mallory"')
        WHERE seq = 5"""
    )
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert f"record seq 5 at {row(pg_table, 5)} was edited" in result.out


async def test_an_edited_column_is_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(f"UPDATE {pg_table} SET time = time - interval '1 day' WHERE seq = 5")
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert f"the record at {row(pg_table, 5)} was edited: its time column differs" in result.out


async def test_a_deleted_row_is_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(f"DELETE FROM {pg_table} WHERE seq = 5")
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert f"record seq 5 was deleted: the chain jumps from seq 4 ({row(pg_table, 4)})" in (
        result.out
    )


async def test_an_inserted_row_is_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(
        f"INSERT INTO {pg_table} (writer, seq, time, hash, body) "
        f"SELECT writer, 21, time, hash, body FROM {pg_table} WHERE seq = 3"
    )
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert f"the record at {row(pg_table, 21)} was inserted: it is a copy of seq 3" in result.out


async def test_reordered_rows_are_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(f"UPDATE {pg_table} SET seq = 1000 WHERE seq = 5")
    postgres.tamper(f"UPDATE {pg_table} SET seq = 5 WHERE seq = 6")
    postgres.tamper(f"UPDATE {pg_table} SET seq = 6 WHERE seq = 1000")
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert (
        f"records were reordered: seq 6 at {row(pg_table, 5)} comes before seq 5 at "
        f"{row(pg_table, 6)}"
    ) in result.out


async def test_rows_cut_from_the_end_are_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    postgres.tamper(f"DELETE FROM {pg_table} WHERE seq > 17")
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert (
        f"the log was truncated: it ends at seq 17 but the heads table {pg_table}_heads "
        "records seq 20"
    ) in result.out


async def test_a_bad_mac_is_caught(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, key_file: Path, log20: Any
) -> None:
    forged = sign(log20[4].hash, b"someone else's key, not ours")
    postgres.tamper(
        f"UPDATE {pg_table} SET body = jsonb_set(body, '{{mac}}', to_jsonb(%s::text)) "
        "WHERE seq = 5",
        forged,
    )
    result = cli("verify", "--audit", pg_url, "--key-file", key_file)
    assert result.code == 1
    assert f"record seq 5 at {row(pg_table, 5)} has a bad MAC" in result.out


async def test_a_wrong_key_is_unreadable_input(
    cli: Any, pg_url: str, tmp_path: Path, log20: Any
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("this-is-not-the-key-that-signed-it\n")
    result = cli("verify", "--audit", pg_url, "--key-file", wrong)
    assert result.code == 2
    assert result.one_sentence_error and "does not fit writer w0" in result.err


async def test_an_unreachable_database_is_unreadable_input(cli: Any, postgres: Any) -> None:
    url = postgres.url("audit_x").replace(f":{postgres.server.port}/", ":1/")
    for command in ("verify", "query", "export", "report"):
        result = cli(command, "--audit", url)
        assert result.code == 2
        assert result.one_sentence_error, result.err
        assert "cannot connect to the PostgreSQL table audit_x at 127.0.0.1:1/audit" in result.err


async def test_a_missing_table_is_unreadable_input(cli: Any, postgres: Any) -> None:
    result = cli("verify", "--audit", postgres.url("no_such_table"))
    assert result.code == 2
    assert result.one_sentence_error
    assert "there is no jitgate audit table no_such_table" in result.err


async def test_query_filters_run_in_the_database(
    cli: Any, pg_url: str, log20: list[AuditRecord]
) -> None:
    result = cli("query", "--audit", pg_url, "--user", "bob", "--type", "action.*", "-o", "json")
    assert result.code == 0
    found = json.loads(result.out)
    assert found and all(r["actor"]["user"] == "bob" for r in found)
    assert all(r["type"].startswith("action.") for r in found)
    expected = [r.seq for r in log20 if r.user == "bob" and r.type.startswith("action.")]
    assert [r["seq"] for r in found] == expected


async def test_tail_and_export_read_the_table(
    cli: Any, pg_url: str, log20: list[AuditRecord], event: Any, tmp_path: Path
) -> None:
    result = cli("tail", "--audit", pg_url, "--lines", "2", "-o", "json")
    assert [json.loads(line)["seq"] for line in result.out.splitlines()] == [19, 20]
    out = tmp_path / "audit.csv"
    assert cli("export", "--audit", pg_url, "--format", "csv", "--out", out).code == 0
    assert len(out.read_text().splitlines()) == 1 + 20
    follow = [
        "tail", "--audit", pg_url, "--lines", "1", "--follow", "--interval", "10ms",
        "--max-records", "2", "-o", "json",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitgate.cli.jitgate", "audit", *follow,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)  # following from here on
    assert json.loads(first)["seq"] == 20
    async with open_audit_writer(pg_url, writer_id="w0", maintenance_interval=None) as writer:
        await writer.append(event(100))
        await writer.append(event(101))
    out_bytes, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert [json.loads(line)["seq"] for line in out_bytes.splitlines()] == [21, 22]


async def test_rows_lost_before_a_restart_are_recorded_in_the_chain(
    cli: Any, postgres: Any, write: Write, pg_url: str, pg_table: str, log20: Any
) -> None:
    postgres.tamper(f"DELETE FROM {pg_table} WHERE seq > 17")
    await write(pg_url, 1)
    result = cli("query", "--audit", pg_url, "--type", "audit.recovered", "-o", "json")
    (recovered,) = json.loads(result.out)
    assert recovered["seq"] == 18
    assert recovered["context"]["repaired"]["missing"] == {"from": 18, "to": 20}
    result = cli("verify", "--audit", pg_url)
    assert result.code == 0, result.out
    assert "acknowledged records seq 18-20 were missing" in result.err
