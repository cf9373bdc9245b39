"""The writer: durable before it answers, group commit, failures, rotation, retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support.auditfiles import stored_records

from jitgate.audit import (
    AuditConfigError,
    AuditEvent,
    AuditRecord,
    AuditWriteError,
    AuditWriter,
    open_audit_writer,
)
from jitgate.audit.filesink import FileSink
from jitgate.core.clock import ManualClock

Write = Callable[..., Awaitable[list[AuditRecord]]]
Event = Callable[[int], AuditEvent]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fdatasync the file sink makes, by file descriptor."""
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        real(fd)
        calls.append(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


async def test_append_returns_once_the_record_is_on_disk(
    file_url: str, log_dir: Path, event: Event, fsyncs: list[int]
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        record = await writer.append(event(0))
        assert fsyncs  # synced before append returned
        assert stored_records(log_dir) == [
            json.loads(record.model_dump_json(by_alias=True, exclude_none=True))
        ]
        assert writer.head is not None and writer.head.hash == record.hash


async def test_concurrent_appends_share_one_fsync(
    file_url: str, log_dir: Path, event: Event, fsyncs: list[int]
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        records = await asyncio.gather(*(writer.append(event(i)) for i in range(64)))
    assert [r.seq for r in records] == list(range(1, 65))
    assert len(stored_records(log_dir)) == 64
    assert len(fsyncs) == 1


async def test_the_next_batch_is_what_queued_during_the_previous_fsync(
    file_url: str, event: Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    release = threading.Event()
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = FileSink._write

    def held(self: FileSink, records: Any, end_segment: bool) -> None:
        batches.append(len(records))
        if len(batches) == 1:
            loop.call_soon_threadsafe(writing.set)
            release.wait(10)
        real(self, records, end_segment)

    monkeypatch.setattr(FileSink, "_write", held)
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        first = asyncio.create_task(writer.append(event(0)))
        await writing.wait()  # a lone append went straight to disk, without waiting for company
        later = [asyncio.create_task(writer.append(event(i))) for i in range(1, 11)]
        await asyncio.sleep(0)  # let them queue
        release.set()
        await asyncio.gather(first, *later)
    assert batches == [1, 10]


async def test_group_commit_can_be_turned_off(
    file_url: str, event: Event, fsyncs: list[int]
) -> None:
    async with open_audit_writer(
        file_url, writer_id="w0", max_batch=1, maintenance_interval=None
    ) as writer:
        await asyncio.gather(*(writer.append(event(i)) for i in range(8)))
    assert len(fsyncs) == 8


async def test_a_failed_write_fails_every_waiting_append_and_recovers(
    cli: Any, file_url: str, log_dir: Path, event: Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdatasync
    broken = True

    def flaky(fd: int) -> None:
        if broken:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        await writer.append(event(0))
        monkeypatch.setattr(os, "fdatasync", flaky)
        results = await asyncio.gather(
            *(writer.append(event(i)) for i in range(1, 6)), return_exceptions=True
        )
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert len({id(r) for r in results}) == 1  # one failure, told to every waiter
        assert not writer.healthy
        assert writer.last_error is results[0]
        assert "Input/output error" in str(writer.last_error)
        broken = False
        await writer.maintain()  # recovers without waiting for the next append
        assert writer.healthy and writer.last_error is None
        record = await writer.append(event(6))
    recovered = [r for r in stored_records(log_dir) if r["type"] == "audit.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["seq"] == record.seq - 1
    assert "Input/output error" in recovered[0]["context"]["error"]
    assert cli("verify", "--audit", file_url).code == 0


async def test_a_value_json_cannot_carry_fails_only_its_own_append(
    file_url: str, event: Event
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        with pytest.raises(ValueError):
            await writer.append(AuditEvent(type="action.allowed", context={"x": float("nan")}))
        assert writer.healthy
        assert (await writer.append(event(1))).seq == 1


async def test_open_is_awaitable_and_a_closed_writer_refuses(file_url: str, event: Event) -> None:
    writer = await open_audit_writer(file_url, writer_id="w0", maintenance_interval=None)
    assert isinstance(writer, AuditWriter)
    await writer.append(event(0))
    await writer.aclose()
    assert not writer.healthy
    with pytest.raises(AuditWriteError, match="closed"):
        await writer.append(event(1))


async def test_one_writer_id_is_one_process(file_url: str) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None):
        with pytest.raises(AuditWriteError, match="already writing"):
            await open_audit_writer(file_url, writer_id="w0", maintenance_interval=None)


async def test_writer_ids_must_be_safe_file_names(file_url: str) -> None:
    with pytest.raises(AuditConfigError, match="writer id"):
        open_audit_writer(file_url, writer_id="../etc")


async def test_reopening_continues_the_chain(write: Write, file_url: str) -> None:
    first = await write(file_url, 3)
    second = await write(file_url, 2)
    assert [r.seq for r in second] == [4, 5]
    assert second[0].prev == first[-1].hash


# -- crash recovery --------------------------------------------------------------------


async def test_a_torn_last_line_is_reported_cut_and_recorded(
    cli: Any,
    write: Write,
    file_url: str,
    log_dir: Path,
    event: Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await write(file_url, 5)
    segment = next((log_dir / "w0").glob("*.jsonl"))
    torn = b'{"actor":{"user":"alice"},"hash":"sha256:0'  # a crash mid-write
    with segment.open("ab") as file:
        file.write(torn)
    assert cli("verify", "--audit", file_url).code == 1
    with caplog.at_level(logging.WARNING, logger="jitgate.audit"):
        records = await write(file_url, 1)
    assert f"ends in an incomplete record ({len(torn)} bytes)" in caplog.text
    recovered = stored_records(log_dir)[5]
    assert recovered["type"] == "audit.recovered"
    assert recovered["context"]["repaired"]["truncated"] == {
        "segment": segment.name,
        "bytes": len(torn),
    }
    assert records[0].seq == 7
    assert cli("verify", "--audit", file_url).code == 0


async def test_acknowledged_records_missing_on_reopen_are_recorded(
    cli: Any, write: Write, file_url: str, log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await write(file_url, 10)
    segment = next((log_dir / "w0").glob("*.jsonl"))
    segment.write_bytes(b"".join(segment.read_bytes().splitlines(keepends=True)[:7]))
    with caplog.at_level(logging.ERROR, logger="jitgate.audit"):
        await write(file_url, 1)
    assert "lost records 8-10 that were acknowledged" in caplog.text
    recovered = stored_records(log_dir)[7]
    assert recovered["type"] == "audit.recovered"
    assert recovered["context"]["repaired"]["missing"] == {"from": 8, "to": 10}
    result = cli("verify", "--audit", file_url)
    assert result.code == 0  # the loss is on the record, and the chain goes on from there
    assert "acknowledged records seq 8-10 were missing when it restarted" in result.err
    report = cli("report", "--audit", file_url, "--since", "2026-01-01", "-o", "json")
    kinds = [finding["kind"] for finding in json.loads(report.out)["findings"]]
    assert "audit-records-lost" in kinds


# -- rotation and retention ------------------------------------------------------------


async def test_an_idle_segment_is_sealed_when_it_is_old_enough(
    cli: Any, file_url: str, log_dir: Path, event: Event, clock: ManualClock
) -> None:
    url = f"{file_url}?segment_age=1h"
    async with open_audit_writer(
        url, writer_id="w0", clock=clock, maintenance_interval=None
    ) as writer:
        await writer.append(event(0))
        await writer.maintain()
        assert stored_records(log_dir)[-1]["type"] != "audit.sealed"
        clock.advance(dt.timedelta(hours=2))
        await writer.maintain()
        assert stored_records(log_dir)[-1]["type"] == "audit.sealed"
        await writer.append(event(1))
    assert len(list((log_dir / "w0").glob("*.jsonl"))) == 2
    assert cli("verify", "--audit", file_url).code == 0


async def _aged_log(url: str, event: Event, clock: ManualClock) -> AuditWriter:
    """Thirty hourly records in small segments, then ten quiet days."""
    writer = await open_audit_writer(url, writer_id="w0", clock=clock, maintenance_interval=None)
    for i in range(30):
        await writer.append(event(i))
        clock.advance(dt.timedelta(hours=1))
    clock.advance(dt.timedelta(days=10))
    return writer


async def test_retention_prunes_old_segments_and_says_so_in_the_chain(
    cli: Any, file_url: str, log_dir: Path, event: Event, clock: ManualClock
) -> None:
    writer = await _aged_log(f"{file_url}?segment_size=3KiB&retention=7d", event, clock)
    try:
        before = sorted((log_dir / "w0").glob("*.jsonl"))
        await writer.maintain()
    finally:
        await writer.aclose()
    after = sorted((log_dir / "w0").glob("*.jsonl"))
    (kept,) = after  # every segment was past retention; the last one was sealed by age
    assert kept not in before
    pruned = [r for r in stored_records(log_dir) if r["type"] == "audit.pruned"]
    assert len(pruned) == 1
    context = pruned[0]["context"]
    assert context["segments"] == [path.name for path in before]
    assert context["resumeSeq"] == pruned[0]["seq"] == int(kept.name.split(".")[0])
    result = cli("verify", "--audit", file_url)
    assert result.code == 0, result.out
    assert f"seq {context['resumeSeq']}-" in result.out


@pytest.mark.parametrize("hold", ["url", "file"])
async def test_a_legal_hold_stops_pruning(
    file_url: str, log_dir: Path, event: Event, clock: ManualClock, hold: str
) -> None:
    url = f"{file_url}?segment_size=3KiB&retention=7d"
    if hold == "url":
        url += "&legal_hold=true"
    else:
        hold_file = log_dir / "LEGAL_HOLD"
        await asyncio.to_thread(log_dir.mkdir, parents=True)
        await asyncio.to_thread(hold_file.write_text, "Case 2026-117, until further notice\n")
    writer = await _aged_log(url, event, clock)
    try:
        before = sorted((log_dir / "w0").glob("*.jsonl"))
        await writer.maintain()
        assert sorted((log_dir / "w0").glob("*.jsonl")) == before
        if hold == "file":  # lifting the hold lets the next round prune
            (log_dir / "LEGAL_HOLD").unlink()
            await writer.maintain()
            assert len(list((log_dir / "w0").glob("*.jsonl"))) == 1
    finally:
        await writer.aclose()
