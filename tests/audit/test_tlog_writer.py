"""A writer with a checkpoint key: its Merkle tree, signed checkpoints and the public check.

The attacks are those of issue 13 that a signed checkpoint alone catches: a record
edited, history rewritten by someone holding the HMAC key, the newest records cut off
together with HEAD. (Forks and a rewrite by the signing-key holder need witnesses.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.auditfiles import stored_records
from support.clocks import ManualSleep

from jitgate.audit import AuditEvent, open_audit_writer
from jitgate.audit.chain import ChainHead, link, record_hash, stored_form
from jitgate.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    TlogProof,
    open_checkpoint,
    writer_verifier,
)
from jitgate.audit.errors import AuditConfigError
from jitgate.audit.filecheckpoints import read_checkpoint
from jitgate.audit.keys import load_checkpoint_key, parse_verifier_key
from jitgate.audit.merkle import root
from jitgate.audit.note import Signer, parse_note
from jitgate.audit.tlog import prove_record, record_leaf, verify_checkpoint, verify_record_proof
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event

DEPLOYMENT = Signer.generate("jitgate.example.com/audit")
PUBLIC = parse_verifier_key(DEPLOYMENT.verifier.vkey)


async def write(
    url: str, count: int, *, first: int = 0, interval: float = 60.0, writer_id: str = "w0"
) -> None:
    clock = ManualClock(START)
    async with open_audit_writer(
        url,
        writer_id=writer_id,
        key=KEY,
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
        checkpoint_interval=interval,
    ) as writer:
        await asyncio.gather(*(writer.append(sample_event(first + i)) for i in range(count)))


@pytest.fixture
def vkey_file(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.pub"
    path.write_text(DEPLOYMENT.verifier.vkey + "\n")
    return path


def check(log_dir: Path, writer: str = "w0") -> Any:
    signed = read_checkpoint(log_dir / writer)
    assert signed is not None
    return verify_checkpoint(writer, stored_records(log_dir, writer), signed, PUBLIC)


async def test_closing_signs_a_checkpoint_of_every_record(file_url: str, log_dir: Path) -> None:
    await write(file_url, 40)
    records = stored_records(log_dir)
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    origin = "jitgate.example.com/audit/w0"
    checkpoint = open_checkpoint(signed, origin, writer_verifier(PUBLIC, "w0"))
    assert checkpoint == Checkpoint(origin, 40, root([record_leaf(r) for r in records]))
    result = check(log_dir)
    assert result.ok, result.problem
    assert (result.records, result.uncovered) == (40, 0)


async def test_a_reopened_writer_extends_its_tree(file_url: str, log_dir: Path) -> None:
    await write(file_url, 5)
    first = read_checkpoint(log_dir / "w0")
    await write(file_url, 7, first=5)
    assert check(log_dir).checkpoint.size == 12
    (log_dir / "w0" / "TREE").unlink()  # rebuilt from the records, and checked against
    await write(file_url, 1, first=12)  # the last checkpoint before anything is signed
    assert check(log_dir).checkpoint.size == 13
    assert first != read_checkpoint(log_dir / "w0")


async def test_checkpoints_are_signed_while_writing(
    file_url: str, log_dir: Path, clock: ManualClock
) -> None:
    polls = ManualSleep()  # the writer's own checkpointer task polls at each `tick()`

    def signed_size() -> int:
        # What a reader sees: the file, written from the store's own thread.
        signed = read_checkpoint(log_dir / "w0")
        assert signed is not None
        return Checkpoint.parse(parse_note(signed).text).size

    async with open_audit_writer(
        file_url,
        writer_id="w0",
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
        checkpoint_interval=1.0,
        checkpoint_sleep=polls,
    ) as writer:
        assert writer.checkpointer is not None
        await writer.append(sample_event(0))
        await polls.tick()
        assert signed_size() == 1  # nothing signed before: the first poll signs at once
        for i in range(1, 3):
            await writer.append(sample_event(i))
            await polls.tick()
            assert signed_size() == i  # signed less than a second ago: the record waits
            clock.advance(dt.timedelta(seconds=1))
            await polls.tick()
            assert signed_size() == i + 1  # a second later, signed without closing the writer
        assert check(log_dir).ok


async def test_an_edited_record_is_named(file_url: str, log_dir: Path) -> None:
    await write(file_url, 10)
    segment = next((log_dir / "w0").glob("*.jsonl"))
    segment.write_bytes(segment.read_bytes().replace(b"alice", b"mallory", 1))
    result = check(log_dir)
    assert result.problem == "record 1 of writer w0 was edited"


async def test_history_rewritten_with_the_hmac_key_is_caught(
    file_url: str, log_dir: Path, tmp_path: Path, cli: Any, key_file: Path, vkey_file: Path
) -> None:
    """The attacker holds the HMAC key, not the checkpoint key: the chain re-verifies."""
    await write(file_url, 20)
    records = stored_records(log_dir)
    head: ChainHead | None = None
    forged = []
    for record in records:
        body = {k: v for k, v in record.items() if k not in ("v", "writer", "seq", "prev")}
        if record["seq"] == 7:
            body["reason"] = "nothing to see here"
        body.pop("hash"), body.pop("mac")
        linked = link(body, writer="w0", head=head, key=KEY)
        forged.append(linked.line)
        head = linked.head
    segment = next((log_dir / "w0").glob("*.jsonl"))
    segment.write_bytes(b"".join(forged))
    head_file = log_dir / "w0" / "HEAD"
    assert head is not None
    witness = head_file.read_bytes().replace(records[-1]["hash"].encode(), head.hash.encode())
    head_file.write_bytes(witness)
    assert cli("verify", "--audit", file_url, "--key-file", key_file).code == 0
    result = check(log_dir)
    assert result.problem == (
        "records 1-20 of writer w0 are not the ones the checkpoint signed: history was rewritten"
    )
    public = cli("verify", "--audit", file_url, "--verifier-key", vkey_file)
    assert public.code == 1
    assert f"FAILED  w0: {result.problem}" in public.out.splitlines()


async def test_the_newest_records_cut_with_head_are_named(
    file_url: str, log_dir: Path, cli: Any, key_file: Path, vkey_file: Path
) -> None:
    await write(file_url, 80)
    segment = next((log_dir / "w0").glob("*.jsonl"))
    segment.write_bytes(b"".join(segment.read_bytes().splitlines(keepends=True)[:30]))
    (log_dir / "w0" / "HEAD").unlink()
    assert cli("verify", "--audit", file_url, "--key-file", key_file).code == 0
    result = check(log_dir)
    assert result.problem == (
        "the signed checkpoint covers 80 records of writer w0, the log holds 30: "
        "records 31-80 are gone"
    )
    public = cli("verify", "--audit", file_url, "--verifier-key", vkey_file)
    assert public.code == 1
    assert f"FAILED  w0: {result.problem}" in public.out.splitlines()


async def test_the_check_needs_the_right_public_key_and_writer(
    file_url: str, log_dir: Path
) -> None:
    await write(file_url, 3)
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    stranger = Signer.generate(DEPLOYMENT.name).verifier
    assert "does not verify" in str(
        verify_checkpoint("w0", stored_records(log_dir), signed, stranger).problem
    )
    assert not verify_checkpoint("w1", stored_records(log_dir), signed, PUBLIC).ok


async def test_records_lost_under_a_checkpoint_stop_the_signing(
    file_url: str, log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await write(file_url, 10)
    signed = read_checkpoint(log_dir / "w0")
    segment = next((log_dir / "w0").glob("*.jsonl"))
    segment.write_bytes(b"".join(segment.read_bytes().splitlines(keepends=True)[:6]))
    with caplog.at_level(logging.ERROR, logger="jitgate.audit"):
        await write(file_url, 2, first=10)
    assert "No more checkpoints are signed for jitgate.example.com/audit/w0" in caplog.text
    assert read_checkpoint(log_dir / "w0") == signed  # never a checkpoint that contradicts it
    assert check(log_dir).problem is not None


async def test_the_chain_verifies_as_before_next_to_checkpoint_files(
    file_url: str, log_dir: Path, cli: Any, key_file: Path
) -> None:
    await write(file_url, 5)
    assert {path.name for path in (log_dir / "w0").iterdir()} >= {"CHECKPOINT", "TREE"}
    result = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert result.code == 0, result.err


async def test_every_writer_has_its_own_origin_under_one_key(file_url: str, log_dir: Path) -> None:
    await write(file_url, 3, writer_id="webhook-0")
    await write(file_url, 4, writer_id="webhook-1")
    assert check(log_dir, "webhook-0").ok
    assert check(log_dir, "webhook-1").checkpoint.origin == "jitgate.example.com/audit/webhook-1"
    shutil.copy(log_dir / "webhook-0" / "CHECKPOINT", log_dir / "webhook-1" / "CHECKPOINT")
    assert not check(log_dir, "webhook-1").ok


def test_checkpoint_keys_load_from_files(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    path.write_text(DEPLOYMENT.skey + "\n")
    assert load_checkpoint_key(path).key_id == DEPLOYMENT.key_id
    path.write_text("not a key")
    with pytest.raises(AuditConfigError, match="holds no signer key"):
        load_checkpoint_key(path)
    with pytest.raises(AuditConfigError):
        parse_verifier_key("nope")


async def test_an_event_past_the_checkpoint_is_counted_not_judged(
    file_url: str, log_dir: Path
) -> None:
    await write(file_url, 4)
    signed = read_checkpoint(log_dir / "w0")
    async with open_audit_writer(
        file_url, writer_id="w0", clock=ManualClock(START), maintenance_interval=None
    ) as writer:
        await writer.append(AuditEvent(type="grant.created", reason="no checkpoint key here"))
    assert signed is not None
    result = verify_checkpoint("w0", stored_records(log_dir), signed, PUBLIC)
    assert result.ok
    assert result.uncovered == 1


async def test_every_bit_flip_of_a_small_log_is_detected(file_url: str, log_dir: Path) -> None:
    """Flip each bit of a stored log: the line no longer parses, or the public check fails.

    The leaf is the whole stored line, so this holds for the MAC's bits too, which only
    the HMAC key could check before.
    """
    async with open_audit_writer(
        file_url,
        writer_id="w0",
        key=KEY,
        clock=ManualClock(START),
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
    ) as writer:
        await writer.append(AuditEvent(type="grant.created", grant="g1", reason="INC-1"))
        await writer.append(AuditEvent(type="grant.revoked", grant="g1"))
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    segment = next((log_dir / "w0").glob("*.jsonl"))
    data = segment.read_bytes()
    caught_by_the_tree = 0
    for position in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[position] ^= 1 << bit
            try:
                records = [json.loads(line) for line in bytes(flipped).splitlines()]
            except ValueError:
                continue  # not JSON any more: `verify` names the line as corrupt
            if not all(isinstance(record, dict) for record in records):
                continue
            assert not verify_checkpoint("w0", records, signed, PUBLIC).ok, (position, bit)
            caught_by_the_tree += 1
    assert caught_by_the_tree > len(data)  # most flips still parse, and all are caught


async def test_one_record_is_proven_offline_with_the_public_key(
    file_url: str, log_dir: Path
) -> None:
    await write(file_url, 21)
    records = stored_records(log_dir)
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    data = prove_record(records, 13, signed).render()
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    proven = verify_record_proof(TlogProof.parse(data), PUBLIC)
    assert proven.record == records[12]
    assert proven.checkpoint.size == 21


async def test_a_proof_of_a_changed_or_moved_record_is_refused(
    file_url: str, log_dir: Path
) -> None:
    await write(file_url, 8)
    records = stored_records(log_dir)
    signed = read_checkpoint(log_dir / "w0")
    assert signed is not None
    proof = prove_record(records, 3, signed)
    assert proof.extra is not None
    forged = proof.extra.replace(b"INC-1234", b"INC-9999")
    assert forged != proof.extra
    with pytest.raises(CheckpointError, match="edited"):
        verify_record_proof(TlogProof(2, proof.path, signed, forged), PUBLIC)
    other = prove_record(records, 4, signed).extra
    with pytest.raises(CheckpointError, match="the proof is of record 3, not 4"):
        verify_record_proof(TlogProof(2, proof.path, signed, other), PUBLIC)
    rehashed = dict(records[2], reason="rewritten")
    rehashed["hash"] = record_hash(rehashed)
    with pytest.raises(CheckpointError, match="not proven"):
        verify_record_proof(TlogProof(2, proof.path, signed, stored_form(rehashed)), PUBLIC)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_record_proof(proof, Signer.generate(DEPLOYMENT.name).verifier)
    with pytest.raises(CheckpointError, match="not the ones the checkpoint signed"):
        prove_record([rehashed if r["seq"] == 3 else r for r in records], 3, signed)
