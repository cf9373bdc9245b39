"""Linked checkpoints: when a writer signs (by the injected clock), the history of every
checkpoint linked to the one before by a consistency proof, and what `verify` makes of it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from support.auditfiles import stored_records

from jitgate.audit import open_audit_writer
from jitgate.audit.checkpoint import Checkpoint, writer_signer
from jitgate.audit.checkpointer import timestamped
from jitgate.audit.filecheckpoints import read_checkpoint, read_history
from jitgate.audit.merkle import CompactTree
from jitgate.audit.note import parse_note
from jitgate.audit.tlog import CheckpointLink, record_leaf, signed_at, verify_history
from jitgate.core.clock import ManualClock

from .conftest import KEY, START, sample_event
from .test_tlog_writer import DEPLOYMENT, PUBLIC

SECOND = dt.timedelta(seconds=1)


def size_of(signed: bytes | None) -> int:
    assert signed is not None
    return Checkpoint.parse(parse_note(signed).text).size


def writer(url: str, clock: ManualClock) -> Any:
    return open_audit_writer(
        url,
        writer_id="w0",
        key=KEY,
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=DEPLOYMENT,
    )


async def test_checkpoints_follow_the_clock_while_writing_and_when_idle(
    file_url: str, log_dir: Path
) -> None:
    clock = ManualClock(START)

    async def due() -> bytes | None:
        """The latest checkpoint once a poll at the clock's time has run.

        The writer's own poll may have run it first, at the same clock time: either way
        the outcome is the same, so the test needs no sleep and no race.
        """
        await checkpointer.publish_due()
        return read_checkpoint(log_dir / "w0")

    async with writer(file_url, clock) as log:
        checkpointer = log.checkpointer
        assert checkpointer is not None
        assert size_of(await due()) == 0  # a fresh log says it is empty
        await log.append(sample_event(0))
        assert size_of(await due()) == 0  # signed a moment ago
        clock.advance(SECOND)
        assert size_of(await due()) == 1  # a record waits at most 1 s
        for i in range(1, 4):
            await log.append(sample_event(i))
            clock.advance(SECOND)
            assert size_of(await due()) == i + 1

        # Idle: nothing until a minute has passed, then the same tree signed again, later.
        before = await due()
        clock.advance(59 * SECOND)
        assert await due() == before
        clock.advance(SECOND)
        again = await due()
        assert again is not None and again != before
        assert size_of(again) == 4
        assert signed_at(again, "w0", PUBLIC) == int((START + 64 * SECOND).timestamp())
        assert await due() == again

    # One history entry per tree size, none for re-signing the same tree.
    sizes = [CheckpointLink.decode(line).tree.size for line in read_history(log_dir / "w0")]
    assert sizes == [0, 1, 2, 3, 4]
    history = verify_history("w0", read_history(log_dir / "w0"), PUBLIC)
    assert history.ok, history.problem
    assert history.checkpoints == 5


async def test_each_checkpoint_is_linked_to_the_last_by_a_consistency_proof(
    file_url: str, log_dir: Path
) -> None:
    clock = ManualClock(START)
    for batch in (3, 5, 1, 8):  # a writer restarted in between carries its history on
        async with writer(file_url, clock) as log:
            for i in range(batch):
                await log.append(sample_event(i))
        clock.advance(SECOND)
    links = [CheckpointLink.decode(line) for line in read_history(log_dir / "w0")]
    assert [link.tree.size for link in links] == [3, 8, 9, 17]
    assert links[0].proof == ()
    assert all(link.proof for link in links[1:])
    assert verify_history("w0", read_history(log_dir / "w0"), PUBLIC).ok


async def test_verify_names_a_checkpoint_that_does_not_extend_the_one_before(
    file_url: str, log_dir: Path, cli: Any, tmp_path: Path
) -> None:
    """A signing-key holder rewrites record 2, re-signs the latest checkpoint and appends it
    to the history: the history still holds what was signed before, and they disagree."""
    clock = ManualClock(START)
    for batch in (4, 4):
        async with writer(file_url, clock) as log:
            for i in range(batch):
                await log.append(sample_event(i))
    records = stored_records(log_dir)
    records[1]["reason"] = "rewritten"
    leaves = [record_leaf(record) for record in records]
    tree = CompactTree()
    tree.extend(leaves)
    forged = timestamped(
        Checkpoint("jitgate.example.com/audit/w0", 8, tree.root()),
        writer_signer(DEPLOYMENT, "w0"),
        START,
    )
    lines = read_history(log_dir / "w0")
    genuine = CheckpointLink.decode(lines[-1])
    lines[-1] = CheckpointLink(forged, genuine.proof, tree).encode()
    (log_dir / "w0" / "CHECKPOINTS").write_bytes(b"".join(lines))
    (log_dir / "w0" / "CHECKPOINT").write_bytes(forged)

    problem = verify_history("w0", lines, PUBLIC).problem
    assert problem is not None
    assert problem.startswith(
        "checkpoint 2 in the history of writer w0 (8 records) does not extend the one before "
        "(4 records): "
    )
    vkey = tmp_path / "checkpoint.pub"
    vkey.write_text(DEPLOYMENT.verifier.vkey)
    result = cli("verify", "--audit", file_url, "--verifier-key", vkey)
    assert result.code == 1
    assert f"FAILED  w0: {problem}" in result.out.splitlines()


async def test_a_flipped_proof_hash_or_a_dropped_link_is_named(
    file_url: str, log_dir: Path
) -> None:
    clock = ManualClock(START)
    for batch in (5, 6, 7):
        async with writer(file_url, clock) as log:
            for i in range(batch):
                await log.append(sample_event(i))
    lines = read_history(log_dir / "w0")
    entry = json.loads(lines[1])
    entry["proof"][0] = entry["proof"][1]
    flipped = [lines[0], json.dumps(entry).encode() + b"\n", lines[2]]
    assert "does not extend the one before" in str(verify_history("w0", flipped, PUBLIC).problem)
    # A dropped middle link: the proofs no longer chain.
    assert not verify_history("w0", [lines[0], lines[2]], PUBLIC).ok
    # An old entry put back at the end: history cannot shrink.
    problem = verify_history("w0", [*lines, lines[0]], PUBLIC).problem
    assert "history was cut" in str(problem)


async def test_a_history_appended_before_a_crash_is_taken_up_on_restart(
    file_url: str, log_dir: Path
) -> None:
    clock = ManualClock(START)
    async with writer(file_url, clock) as log:
        for i in range(3):
            await log.append(sample_event(i))
    first = read_checkpoint(log_dir / "w0")
    async with writer(file_url, clock) as log:
        await log.append(sample_event(3))
    # The writer stopped after appending to the history, before replacing CHECKPOINT/TREE.
    (log_dir / "w0" / "CHECKPOINT").write_bytes(first or b"")
    (log_dir / "w0" / "TREE").unlink()
    async with writer(file_url, clock) as log:
        await log.append(sample_event(4))
    assert size_of(read_checkpoint(log_dir / "w0")) == 5
    history = verify_history("w0", read_history(log_dir / "w0"), PUBLIC)
    assert history.ok, history.problem
    assert history.checkpoints == 3
