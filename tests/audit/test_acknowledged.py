"""What an append hands back, and when: in call order, only once synced, as stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jitgate.audit import AuditEvent, AuditRecord, open_audit_writer
from jitgate.audit.chain import GENESIS
from jitgate.audit.tlog import record_leaf

Event = Callable[[int], AuditEvent]


def stored_lines(log_dir: Path, writer: str = "w0") -> list[bytes]:
    found: list[bytes] = []
    for path in sorted((log_dir / writer).glob("*.jsonl")):
        found += path.read_bytes().splitlines()
    return found


async def test_submitted_events_are_chained_in_call_order_and_each_answered_once_synced(
    file_url: str, log_dir: Path, event: Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []  # how many lines were on disk at each fdatasync
    real = os.fdatasync

    def counting(fd: int) -> None:
        real(fd)
        synced.append(len(stored_lines(log_dir)))

    monkeypatch.setattr(os, "fdatasync", counting)
    answered: list[tuple[int, int]] = []  # (seq, lines synced when its append was answered)

    def on_answer(future: asyncio.Future[AuditRecord]) -> None:
        answered.append((future.result().seq, synced[-1] if synced else 0))

    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        first = [writer.submit(event(i)) for i in range(10)]  # no await in between
        for future in first:
            future.add_done_callback(on_answer)
        await asyncio.sleep(0)  # the first batch is on its way to disk
        later = [writer.submit(event(i)) for i in range(10, 30)]
        for future in later:
            future.add_done_callback(on_answer)
        records = await asyncio.gather(*first, *later)

    assert [r.seq for r in records] == list(range(1, 31))
    assert [r.admission_uid for r in records] == [event(i).admission_uid for i in range(30)]
    stored = [json.loads(line) for line in stored_lines(log_dir)]
    assert [r["seq"] for r in stored] == list(range(1, 31))
    assert [r["prev"] for r in stored] == [GENESIS] + [r["hash"] for r in stored[:-1]]
    # Every append was answered after an fdatasync that had its record on disk.
    assert len(answered) == 30
    assert all(seq <= lines_synced for seq, lines_synced in answered)
    assert len(synced) < 30  # and they shared fsyncs


@pytest.mark.parametrize("key", [None, b"k3y-for-the-jitgate-audit-tests-0123456789"])
async def test_the_record_handed_back_is_the_one_read_back(
    file_url: str, log_dir: Path, event: Event, key: bytes | None
) -> None:
    async with open_audit_writer(
        file_url, writer_id="w0", key=key, maintenance_interval=None
    ) as writer:
        records = await asyncio.gather(*(writer.append(event(i)) for i in range(6)))
        lone = await writer.append(AuditEvent(type="request.created"))
    lines = stored_lines(log_dir)
    for record, line in zip([*records, lone], lines, strict=True):
        read = AuditRecord.from_stored(json.loads(line))
        assert record.model_dump() == read.model_dump()
        assert record.model_dump_json(by_alias=True) == read.model_dump_json(by_alias=True)
        assert record.leaf_hash == "sha256:" + record_leaf(json.loads(line)).hex()
        assert (record.mac is None) == (key is None)
    assert lone.actor is None and lone.namespace is None


async def test_record_times_are_utc_whatever_zone_an_event_gives(
    file_url: str, log_dir: Path
) -> None:
    cest = dt.timezone(dt.timedelta(hours=2))
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        record = await writer.append(
            AuditEvent(type="request.created", time=dt.datetime(2026, 6, 1, 12, 0, 5, 7, cest))
        )
        with pytest.raises(ValueError, match="timezone-aware"):
            await writer.append(
                AuditEvent(type="request.created", time=dt.datetime(2026, 6, 1, 12))
            )
    stored: dict[str, Any] = json.loads(stored_lines(log_dir)[0])
    assert record.time == stored["time"] == "2026-06-01T10:00:05.000007Z"
    assert len(stored_lines(log_dir)) == 1


async def test_maintenance_gets_its_turn_while_appends_keep_coming(
    file_url: str, log_dir: Path, event: Event
) -> None:
    """The file sink stores batch after batch without the writer's task in between
    (`AuditWriter._pump`); a seal or a pruning round waiting for the sink must still get it
    between two batches, not once the appends stop."""
    appended = 0
    maintained_after: int | None = None
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:

        async def keep_appending() -> None:
            nonlocal appended
            while maintained_after is None and appended < 5_000:  # bounded
                await asyncio.gather(*(writer.submit(event(appended + i)) for i in range(8)))
                appended += 8

        producer = asyncio.create_task(keep_appending())
        await writer.append(event(10_000))  # the producer's batches are flowing
        await writer.maintain()
        maintained_after = appended
        await producer
    assert maintained_after < 5_000
    assert len(stored_lines(log_dir)) == appended + 1
