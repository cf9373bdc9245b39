"""Signed checkpoints, proofs and witnesses on the PostgreSQL sink, against a real server.

The same checks as on files (`test_tlog_writer`, `test_witness`): the writer's checkpoints
and their consistency-linked history are stored in PostgreSQL, and `verify --verifier-key`,
`prove`, `verify-proof` and the witness policy work on a postgresql:// URL. The attackers
are a database superuser (triggers off) who may also hold the HMAC and signing keys.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jitgate.audit import open_audit_writer
from jitgate.audit.chain import ChainHead, link
from jitgate.audit.checkpoint import Checkpoint, writer_signer
from jitgate.audit.checkpointer import timestamped
from jitgate.audit.merkle import CompactTree, leaf_hash
from jitgate.audit.tlog import CheckpointLink, encode_tree
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event
from .test_tlog_writer import DEPLOYMENT
from .test_witness import ORIGIN, Running, witness  # noqa: F401  (the witness fixture)

pytestmark = pytest.mark.postgres


async def write(url: str, count: int, *, first: int = 0, witnesses: tuple[str, ...] = ()) -> None:
    async with open_audit_writer(
        url,
        writer_id="w0",
        key=KEY,
        clock=ManualClock(START),
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
        witnesses=witnesses,
    ) as writer:
        await asyncio.gather(*(writer.append(sample_event(first + i)) for i in range(count)))


@pytest.fixture
def keys(tmp_path: Path, key_file: Path) -> dict[str, Path]:
    files = {"verifier": tmp_path / "checkpoint.pub", "hmac": key_file}
    files["verifier"].write_text(DEPLOYMENT.verifier.vkey + "\n")
    return files


def bodies(postgres: Any, table: str) -> list[dict[str, Any]]:
    chained = ("v", "writer", "seq", "prev", "hash", "mac")
    with postgres.admin() as conn:
        rows = conn.execute(f"SELECT body FROM {table} WHERE writer = 'w0' ORDER BY seq")
        return [{k: v for k, v in body.items() if k not in chained} for (body,) in rows]


def forge(postgres: Any, table: str, records: list[dict[str, Any]]) -> bytes:
    """A superuser holding the HMAC and signing keys replaces w0's rows and checkpoints with
    `records`, re-chained, re-MAC'd and re-signed; the head witness agrees with them."""
    head: ChainHead | None = None
    lines = []
    for body in records:
        linked = link(body, writer="w0", head=head, key=KEY)
        lines.append(linked)
        head = linked.head
    assert head is not None
    tree = CompactTree()
    tree.extend(leaf_hash(linked.line.removesuffix(b"\n")) for linked in lines)
    signed = timestamped(
        Checkpoint(ORIGIN, tree.size, tree.root()), writer_signer(DEPLOYMENT, "w0"), START
    )
    with postgres.admin() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"DELETE FROM {table} WHERE writer = 'w0'")
        for linked in lines:
            conn.execute(
                f"INSERT INTO {table} (writer, seq, time, hash, body) VALUES (%s, %s, %s, %s, %s)",
                ["w0", linked.seq, linked.record["time"], linked.hash, linked.line.decode()],
            )
        conn.execute(f"UPDATE {table}_heads SET seq = %s, hash = %s", [head.seq, head.hash])
        conn.execute(f"DELETE FROM {table}_checkpoints WHERE writer = 'w0'")
        conn.execute(
            f"INSERT INTO {table}_checkpoints (writer, size, link) VALUES ('w0', %s, %s)",
            [tree.size, CheckpointLink(signed, (), tree).encode().decode()],
        )
        conn.execute(
            f"UPDATE {table}_checkpoint SET tree = %s, checkpoint = %s WHERE writer = 'w0'",
            [encode_tree(tree).decode(), signed.decode()],
        )
    return signed


async def test_checkpoints_are_kept_in_postgres_and_verify_with_the_public_key(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, keys: dict[str, Path]
) -> None:
    await write(pg_url, 40)
    await write(pg_url, 25, first=40)  # a restart carries on from the stored tree
    with postgres.admin() as conn:
        sizes = conn.execute(f"SELECT size FROM {pg_table}_checkpoints ORDER BY size").fetchall()
        (latest,) = conn.execute(f"SELECT checkpoint FROM {pg_table}_checkpoint").fetchone()
    assert sizes == [(40,), (65,)]
    assert latest.startswith(f"{ORIGIN}\n65\n")
    result = cli("verify", "--audit", pg_url, "--verifier-key", keys["verifier"])
    assert result.code == 0, result.out
    assert (
        "ok      w0: signed checkpoint covers records 1-65, 2 checkpoint(s) each extending the "
        "one before; signed "
    ) in result.out


async def test_a_record_is_proven_from_postgres_and_checked_offline(
    cli: Any, pg_url: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    await write(pg_url, 30)
    proof = tmp_path / "record.proof"
    assert cli("prove", "--audit", pg_url, "w0:17", "--out", proof).code == 0
    result = cli("verify-proof", proof, "--verifier-key", keys["verifier"])
    assert result.code == 0, result.out
    assert result.out.startswith(
        "proven: record 17 of writer w0 is under its signed checkpoint of 30 records"
    )


async def test_the_checkpoint_history_refuses_update_and_delete(
    postgres: Any, pg_url: str, pg_table: str
) -> None:
    await write(pg_url, 5)
    owner = psycopg.connect(postgres.url(), autocommit=True)
    with owner:
        for statement in (
            f"UPDATE {pg_table}_checkpoints SET link = 'x'",
            f"DELETE FROM {pg_table}_checkpoints",
            f"TRUNCATE {pg_table}_checkpoints",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)


async def test_attack_a_superuser_with_the_hmac_key_rewrites_rows_and_verify_names_it(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, keys: dict[str, Path]
) -> None:
    await write(pg_url, 60)
    records = bodies(postgres, pg_table)
    records[9]["reason"] = "nothing to see here"
    head: ChainHead | None = None
    with postgres.admin() as conn:  # rows re-chained and re-MAC'd; checkpoints left alone
        conn.execute("SET session_replication_role = replica")
        for body in records:
            linked = link(body, writer="w0", head=head, key=KEY)
            conn.execute(
                f"UPDATE {pg_table} SET hash = %s, body = %s WHERE writer = 'w0' AND seq = %s",
                [linked.hash, linked.line.decode(), linked.seq],
            )
            head = linked.head
        assert head is not None
        conn.execute(f"UPDATE {pg_table}_heads SET hash = %s", [head.hash])
    assert cli("verify", "--audit", pg_url, "--key-file", keys["hmac"]).code == 0
    result = cli("verify", "--audit", pg_url, "--verifier-key", keys["verifier"])
    assert result.code == 1
    assert (
        "FAILED  w0: records 1-60 of writer w0 are not the ones the checkpoint signed: "
        "history was rewritten"
    ) in result.out.splitlines()


async def test_attack_the_tail_cut_with_its_checkpoints_is_named_by_the_witness_policy(
    cli: Any,
    postgres: Any,
    pg_url: str,
    pg_table: str,
    keys: dict[str, Path],
    witness: Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    await write(pg_url, 100, witnesses=(witness.url,))
    witness_key = tmp_path / "witness.pub"
    witness_key.write_text(witness.key.verifier.vkey + "\n")
    policy = ["--verifier-key", keys["verifier"], "--witness-key", witness_key]
    assert cli("verify", "--audit", pg_url, *policy).code == 0

    # The last 50 rows go, with every checkpoint that covered them: re-signed at 50.
    forge(postgres, pg_table, bodies(postgres, pg_table)[:50])
    assert cli("verify", "--audit", pg_url, "--key-file", keys["hmac"]).code == 0
    assert cli("verify", "--audit", pg_url, "--verifier-key", keys["verifier"]).code == 0
    result = cli("verify", "--audit", pg_url, *policy)
    assert result.code == 1
    assert (
        "FAILED  w0: the latest checkpoint (50 records) has 0 of the 1 witness cosignature(s) "
        "the policy needs: a history no witness cosigned (rewritten, cut or forked)"
    ) in result.out.splitlines()


async def test_a_corrupt_row_is_named(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, keys: dict[str, Path]
) -> None:
    await write(pg_url, 10)
    postgres.tamper(f"UPDATE {pg_table} SET body = '[\"garbage\"]' WHERE seq = 4")
    result = cli("verify", "--audit", pg_url, "--verifier-key", keys["verifier"])
    assert result.code == 1
    assert (
        f"FAILED  w0: the line at table {pg_table} row (writer w0, seq 4) is not an audit "
        "record (its body is not a JSON object); it was edited or damaged"
    ) in result.out.splitlines()
    query = cli("query", "--audit", pg_url, "-o", "json")
    assert query.code == 1 and query.one_sentence_error, query
    assert (
        f"the record at table {pg_table} row (writer w0, seq 4) is damaged (v: field required); "
        "run `jitgate audit verify`"
    ) in query.err
