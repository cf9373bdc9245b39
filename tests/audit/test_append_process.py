"""A file log's batches written and synced by a process of its own (`appendproc`), as
`jitgate webhook` writes them (batches of `filesink.PROCESS_BATCH` records or more; a lone
record on the writer's thread): durable when answered, a process that ends fails its batch
and is replaced, and the writer's lock held by both processes."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from support.auditfiles import stored_records
from support.processes import append_processes, ended, written_by

from jitgate.audit import AuditEvent, AuditWriteError, open_audit_writer
from jitgate.audit import filelayout as layout
from jitgate.audit.appendproc import Appender
from jitgate.audit.filesink import PROCESS_BATCH
from jitgate.audit.writer import AuditWriter


def append_process() -> int:
    """The pid of this process's one append process."""
    [pid] = append_processes(os.getpid())
    return pid


async def batch(writer: AuditWriter, events: list[AuditEvent]) -> list[Any]:
    """`events` appended as one batch (`filesink.PROCESS_BATCH` or more records go to the
    append process; a lone one is written on the writer's thread): the records or errors."""
    assert len(events) >= PROCESS_BATCH
    appends = [writer.submit(event) for event in events]  # queued before the batch is taken
    return await asyncio.gather(*appends, return_exceptions=True)


def open_writer(file_url: str) -> Any:
    return open_audit_writer(
        file_url, writer_id="w0", maintenance_interval=None, append_process=True
    )


async def test_appends_are_stored_and_the_head_names_the_last(
    cli: Any, file_url: str, log_dir: Path, event: Any
) -> None:
    async with open_writer(file_url) as writer:
        records = [await writer.append(event(0))]  # a new segment: created on the thread
        pid = append_process()
        before = written_by(pid)
        records += await batch(writer, [event(i) for i in range(1, 65)])
        on_disk = stored_records(log_dir)
        # The 64 records' lines went through the append process.
        [segment] = (log_dir / "w0").glob("*.jsonl")
        lines = segment.read_bytes().splitlines(keepends=True)
        assert written_by(pid) - before >= sum(len(line) for line in lines[1:])
        # Read while the writer is open: each batch's records were there when answered.
        assert [r["hash"] for r in on_disk] == [r.hash for r in records]
        head = layout.read_head(log_dir / "w0" / layout.HEAD_FILE)
        assert head is not None and (head["seq"], head["hash"]) == (65, records[-1].hash)
    await ended(pid)  # closing the writer ends its append process
    assert [r.seq for r in records] == list(range(1, 66))
    assert cli("verify", "--audit", file_url).code == 0


async def test_an_append_process_that_ends_fails_its_batch_and_another_takes_over(
    cli: Any, file_url: str, log_dir: Path, event: Any
) -> None:
    async with open_writer(file_url) as writer:
        kept = [await writer.append(event(i)) for i in range(2)]
        first = append_process()
        os.kill(first, signal.SIGKILL)
        await ended(first)
        lost = await batch(writer, [event(2), event(3)])
        assert all(isinstance(r, AuditWriteError) for r in lost)
        assert "append process has ended" in str(lost[0])
        assert not writer.healthy
        later = await writer.append(event(4))  # recovers first, with a new append process
        assert writer.healthy
        assert append_process() != first
    log = stored_records(log_dir)
    assert [r["hash"] for r in log[:2]] == [r.hash for r in kept]
    assert log[2]["type"] == "audit.recovered"
    assert "append process has ended" in log[2]["context"]["error"]
    assert "repaired" not in log[2]["context"]  # nothing acknowledged went missing
    assert log[3]["hash"] == later.hash and len(log) == 4
    assert cli("verify", "--audit", file_url).code == 0


async def test_an_append_the_process_cannot_make_fails_and_is_reported(
    file_url: str, log_dir: Path, event: Any
) -> None:
    async with open_writer(file_url) as writer:
        await writer.append(event(0))
        [segment] = (log_dir / "w0").glob("*.jsonl")
        segment.unlink()  # the append process opens it with the writer's next batch
        lost = await batch(writer, [event(1), event(2)])
        assert all(isinstance(r, AuditWriteError) for r in lost)
        assert "No such file or directory" in str(lost[0])
        assert not writer.healthy
        await writer.append(event(3))
        assert writer.healthy
    recovered, after = stored_records(log_dir)
    assert recovered["type"] == "audit.recovered"
    # The record acknowledged before the segment was deleted is missing, and said so.
    assert recovered["context"]["repaired"]["missing"] == {"from": 1, "to": 1}
    assert after["prev"] == recovered["hash"]  # the chain goes on from the recovery


async def test_the_append_process_holds_the_writers_lock_too(tmp_path: Path) -> None:
    lock_file, head_file = tmp_path / layout.LOCK_FILE, tmp_path / layout.HEAD_FILE
    lock_fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    head_fd = os.open(head_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    assert layout.try_lock(lock_fd)
    appender = await Appender.start(head_fd, lock_fd)
    os.close(lock_fd)  # this process lets go: its append process still holds the lock
    os.close(head_fd)
    other = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
    try:
        assert not layout.try_lock(other)
        await appender.aclose()
        assert layout.try_lock(other)
    finally:
        os.close(other)


async def test_a_writer_without_an_append_process_appends_on_its_thread(
    file_url: str, log_dir: Path, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))  # no process for us

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refused)
    writer: AuditWriter
    async with open_writer(file_url) as writer:
        records = await asyncio.gather(*(writer.append(event(i)) for i in range(8)))
        assert append_processes(os.getpid()) == []
    assert [r["hash"] for r in stored_records(log_dir)] == [r.hash for r in records]
