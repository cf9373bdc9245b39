"""A file log pruned by retention stays checkable with the public key alone: its pruning
records carry the Merkle tree state of the pruned prefix, so `verify --verifier-key`,
`prove` and `verify-proof` carry on from there, and forging that state is named."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from support.auditfiles import stored_records

from jitgate.audit import filelayout as layout
from jitgate.audit import open_audit_writer
from jitgate.audit.merkle import CompactTree, leaf_hash
from jitgate.audit.tlog import tree_from_state, tree_state
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event
from .test_tlog_writer import DEPLOYMENT


async def pruned_log(log_dir: Path, *, witnesses: tuple[str, ...] = ()) -> None:
    """Writer w0, signing checkpoints: twice 30 hourly records in small segments, ten quiet
    days and a retention round that prunes them; then 5 records more."""
    clock = ManualClock(START)
    async with open_audit_writer(
        f"file://{log_dir}?segment_size=3KiB&retention=7d",
        writer_id="w0",
        key=KEY,
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
        witnesses=witnesses,
    ) as writer:
        for round_ in range(2):
            for i in range(30):
                await writer.append(sample_event(30 * round_ + i))
                clock.advance(dt.timedelta(hours=1))
            clock.advance(dt.timedelta(days=10))
            await writer.maintain()
        for i in range(5):
            await writer.append(sample_event(60 + i))


@pytest.fixture
def verifier(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.pub"
    path.write_text(DEPLOYMENT.verifier.vkey + "\n")
    return path


@pytest.fixture
async def log_dir(tmp_path: Path) -> Path:
    log_dir = tmp_path / "audit"
    await pruned_log(log_dir)
    return log_dir


def _verify(cli: Any, log_dir: Path, *extra: str | Path) -> Any:
    return cli("verify", "--audit", f"file://{log_dir}", *extra)


def _first_kept(log_dir: Path) -> int:
    return int(stored_records(log_dir)[0]["seq"])


async def test_a_pruned_file_log_passes_verify_with_the_key_file_and_the_verifier_key(
    cli: Any, log_dir: Path, key_file: Path, verifier: Path
) -> None:
    pruned = [r for r in stored_records(log_dir) if r["type"] == "audit.pruned"]
    assert [r["context"]["tree"]["size"] for r in pruned] == [
        r["context"]["resumeSeq"] - 1 for r in pruned
    ]
    first = _first_kept(log_dir)
    assert first > 31  # both rounds pruned: the second grew the first one's tree

    result = _verify(cli, log_dir, "--key-file", key_file, "--verifier-key", verifier)

    assert result.code == 0, result.out + result.err
    assert f"(records 1-{first - 1} pruned, their tree state from the pruning record)" in (
        result.out
    )
    assert (
        result.out.splitlines()[-1].startswith("The audit log is intact: 1 writer(s), ")
        and "every one under its signed checkpoint" in result.out.splitlines()[-1]
    )


async def test_a_kept_record_is_proven_offline_after_pruning(
    cli: Any, log_dir: Path, verifier: Path, tmp_path: Path
) -> None:
    first = _first_kept(log_dir)
    proof = tmp_path / "record.proof"

    made = cli("prove", "--audit", f"file://{log_dir}", f"w0:{first + 2}", "--out", proof)
    assert made.code == 0, made.err
    checked = cli("verify-proof", proof, "--verifier-key", verifier)

    assert checked.code == 0, checked.out
    assert checked.out.startswith(f"proven: record {first + 2} of writer w0 is under its signed")
    gone = cli("prove", "--audit", f"file://{log_dir}", f"w0:{first - 1}")
    assert gone.code == 1
    assert f"record {first - 1} was pruned" in gone.err


async def test_a_kept_record_edited_after_pruning_is_named(
    cli: Any, log_dir: Path, key_file: Path, verifier: Path
) -> None:
    segment = sorted((log_dir / "w0").glob("*.jsonl"))[0]
    lines = segment.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["actor"]["user"] = "mallory"
    lines[0] = json.dumps(record, sort_keys=True).encode() + b"\n"
    segment.write_bytes(b"".join(lines))

    result = _verify(cli, log_dir, "--key-file", key_file, "--verifier-key", verifier)

    assert result.code == 1
    assert f"FAILED  w0: record seq {record['seq']} at w0/{segment.name} line 1 was edited" in (
        result.out
    )
    # The public check, from the pruned prefix's tree state, names the same record.
    assert f"FAILED  w0: record {record['seq']} of writer w0 was edited" in result.out, result.out


async def test_a_forged_pruned_tree_state_is_named_by_the_verifier_key(
    cli: Any, log_dir: Path, verifier: Path
) -> None:
    """Someone swaps the pruned prefix's tree state for another of the same size."""
    saved = log_dir / "w0" / layout.PRUNED_FILE
    records = [json.loads(line) for line in saved.read_bytes().splitlines()]
    latest = records[-1]["context"]
    genuine = tree_from_state(latest["tree"])
    forged = CompactTree()
    forged.extend(leaf_hash(b"forged %d" % i) for i in range(genuine.size))
    latest["tree"] = tree_state(forged)
    saved.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))

    result = _verify(cli, log_dir, "--verifier-key", verifier)

    assert result.code == 1
    assert (
        f"FAILED  w0: records {genuine.size + 1}-" in result.out
        and "are not the ones the checkpoint signed: history was rewritten" in result.out
    ), result.out
    assert base64.b64decode(latest["tree"]["root"]) != genuine.root()
