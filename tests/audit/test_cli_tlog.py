"""`jitgate audit keygen`, `verify --verifier-key`, `prove` and `verify-proof`: a log checked
and one record proven with the public key alone."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from jitgate.audit import open_audit_writer
from jitgate.audit.keys import load_checkpoint_key
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event


async def _signed_log(url: str, key_file: Path, count: int, writer_id: str = "webhook-0") -> None:
    async with open_audit_writer(
        url,
        writer_id=writer_id,
        key=KEY,
        clock=ManualClock(START),
        maintenance_interval=None,
        checkpoint_key=load_checkpoint_key(key_file),
    ) as writer:
        await asyncio.gather(*(writer.append(sample_event(i)) for i in range(count)))


def _keys(cli: Any, tmp_path: Path) -> tuple[Path, Path]:
    signer = tmp_path / "checkpoint.key"
    made = cli("keygen", "jitgate.example.com/prod", "--out", signer)
    assert made.code == 0, made.err
    assert signer.stat().st_mode & 0o777 == 0o600
    assert signer.read_text().startswith("PRIVATE+KEY+jitgate.example.com/prod+")
    verifier = tmp_path / "checkpoint.pub"
    verifier.write_text(made.out)
    assert made.out.startswith("jitgate.example.com/prod+")
    again = cli("keygen", "jitgate.example.com/prod", "--out", signer)
    assert again.code == 2
    assert "exists; a signing key is never overwritten" in again.err
    return signer, verifier


async def test_a_signed_log_verifies_with_the_public_key_and_says_how_old_its_checkpoint_is(
    cli: Any, file_url: str, tmp_path: Path
) -> None:
    signer, verifier = _keys(cli, tmp_path)
    await _signed_log(file_url, signer, 12)
    await _signed_log(file_url, signer, 3, writer_id="operator-0")

    result = cli("verify", "--audit", file_url, "--verifier-key", verifier)

    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    expected = (
        "ok      webhook-0: signed checkpoint covers records 1-12, 1 checkpoint(s) each "
        f"extending the one before; signed {START:%Y-%m-%dT%H:%M:%SZ}"
    )
    assert any(line.startswith(expected) and line.endswith(" ago)") for line in lines), lines
    assert any(
        line.startswith("ok      operator-0: signed checkpoint covers records 1-3")
        for line in lines
    )
    assert lines[-1] == (
        "The audit log is intact: 2 writer(s), 15 records, every one under its signed checkpoint "
        "(MACs not checked: no --key-file)."
    )


async def test_a_writer_without_checkpoints_fails_the_public_check(
    cli: Any, file_url: str, tmp_path: Path, write: Any
) -> None:
    _, verifier = _keys(cli, tmp_path)
    await write(file_url, 3, writer_id="w0")

    result = cli("verify", "--audit", file_url, "--verifier-key", verifier)

    assert result.code == 1
    assert "FAILED  w0: no signed checkpoint (was it run with --checkpoint-key?)" in result.out


async def test_a_record_proven_offline_and_a_forged_proof_refused(
    cli: Any, file_url: str, tmp_path: Path
) -> None:
    signer, verifier = _keys(cli, tmp_path)
    await _signed_log(file_url, signer, 9)
    proof = tmp_path / "record.proof"

    made = cli("prove", "--audit", file_url, "webhook-0:4", "--out", proof)
    assert made.code == 0, made.err
    assert proof.read_bytes().startswith(b"c2sp.org/tlog-proof@v1\nextra ")

    checked = cli("verify-proof", proof, "--verifier-key", verifier)
    assert checked.code == 0, checked.out
    first, rest = checked.out.split("\n", 1)
    assert first == (
        "proven: record 4 of writer webhook-0 is under its signed checkpoint of 9 records"
    )
    assert json.loads(rest)["seq"] == 4

    # Someone edits the record the proof carries: the proof no longer holds.
    header, _, signed = proof.read_bytes().partition(b"\n\n")
    lines = header.split(b"\n")
    record = json.loads(base64.b64decode(lines[1].removeprefix(b"extra ")))
    record["actor"]["user"] = "mallory"
    lines[1] = b"extra " + base64.b64encode(json.dumps(record).encode())
    proof.write_bytes(b"\n".join(lines) + b"\n\n" + signed)
    forged = cli("verify-proof", proof, "--verifier-key", verifier)
    assert forged.code == 1
    assert forged.out.startswith("NOT PROVEN: ")

    assert cli("prove", "--audit", file_url, "webhook-0:10").code == 1
    assert cli("prove", "--audit", file_url, "webhook-0").code == 2
    assert cli("prove", "--audit", file_url, "nobody:1").code == 2


def _help(cli: Any, *command: str) -> str:
    result = cli(*command, "--help")
    assert result.code == 0
    return " ".join(result.out.split())  # as a reader reads it, not as argparse wraps it


def test_the_help_says_what_each_check_proves_and_against_whom(cli: Any) -> None:
    overview = _help(cli)
    for statement in (
        "hash chain: every writer's records are whole and in order",
        "Against accidental corruption and edits by someone without keys",
        "HMAC: each record was MAC'd with the key. Against edits by anyone without the HMAC key",
        "checked with the public key only (no secret)",
        "Against anyone without the signing key",
        "Consistency proofs: each checkpoint extends the one before, so history already "
        "checkpointed cannot be rewritten without the signing key",
        "Against a key holder (HMAC and signing keys) rewriting, cutting the tail or forking",
        "webhook replicas witnessing one another",
        "against forged records (UNHEARD",
        "a bypassed webhook (UNRECORDED)",
        "only the API server gets decisions and records, against forged reviews",
    ):
        assert statement in overview, statement
    verify = _help(cli, "verify")
    assert "--key-file (HMAC) edits by anyone without the HMAC key" in verify
    assert "--witness-key (cosignatures) a key holder rewriting, cutting the tail" in verify
    assert "gets no cosignature and `verify --witness-key` names it" in _help(cli, "witness")
    assert "it names forged records" in _help(cli, "reconcile")
    assert "without the log or any secret" in _help(cli, "prove")
