"""A failed write leaves nothing behind: a record is in the log if and only if its append
returned. The webhook denies an action whose `action.allowed` record failed to be stored,
so that record must never show up later as if it had been acknowledged.

Failures are real ones from the OS calls the file sink makes (one call is made to fail),
or from PostgreSQL itself (a deferred trigger that fails the commit).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.auditfiles import stored_records

from jitgate.audit import AuditEvent, AuditRecord, AuditWriteError, open_audit_writer
from jitgate.audit.chain import GENESIS
from jitgate.audit.filesink import FileSink
from jitgate.audit.pgsink import PostgresSink

Event = Callable[[int], AuditEvent]
EIO = OSError(errno.EIO, os.strerror(errno.EIO))


def head_file(log_dir: Path, writer: str = "w0") -> dict[str, Any]:
    value: dict[str, Any] = json.loads((log_dir / writer / "HEAD").read_bytes())
    return value


class Faults:
    """Makes chosen calls of `os.<name>`, as the file sink makes them, fail with EIO."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.failed: dict[str, int] = {}

    def fail(self, name: str, *, after: int = 0, times: int | None = 1) -> Callable[[], None]:
        """Let `after` calls through, then fail `times` (None: all until healed); gives `heal`."""
        real = getattr(os, name)
        passing = [after]
        left = [times]
        self.failed[name] = 0

        def failing(*args: Any) -> Any:
            if passing[0] > 0:
                passing[0] -= 1
                return real(*args)
            if left[0] is None or left[0] > 0:
                if left[0] is not None:
                    left[0] -= 1
                self.failed[name] += 1
                raise EIO
            return real(*args)

        self._monkeypatch.setattr(os, name, failing)

        def heal() -> None:
            left[0] = 0

        return heal


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    yield Faults(monkeypatch)


def hashes(records: list[dict[str, Any]] | list[AuditRecord]) -> list[str]:
    return [r["hash"] if isinstance(r, dict) else r.hash for r in records]


def assert_recovered_after(recovered: dict[str, Any], last: AuditRecord) -> None:
    """The recovery record chains onto the last acknowledged record and reports no loss."""
    assert recovered["type"] == "audit.recovered"
    assert recovered["seq"] == last.seq + 1
    assert recovered["prev"] == last.hash
    assert "Input/output error" in recovered["context"]["error"]
    assert "repaired" not in recovered["context"]  # nothing acknowledged went missing
    assert "unacknowledged" not in recovered["context"]


# -- the file sink ------------------------------------------------------------------------


async def test_a_failed_batch_leaves_none_of_its_records_and_the_chain_goes_on(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(i)) for i in range(3)]
        faults.fail("fdatasync")
        results = await asyncio.gather(
            *(writer.append(event(i)) for i in range(3, 9)), return_exceptions=True
        )
        assert faults.failed == {"fdatasync": 1}  # one batch, one failed fsync
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert len({id(r) for r in results}) == 1  # every appender in the batch is told
        # Gone as soon as the appends raised, not only once the writer recovers.
        assert hashes(stored_records(log_dir)) == hashes(acked)
        assert head_file(log_dir)["seq"] == 3
        assert not writer.healthy
        assert writer.head is not None and writer.head.hash == acked[-1].hash
        later = await writer.append(event(9))
        assert writer.healthy
    log = stored_records(log_dir)
    assert hashes(log[:3]) == hashes(acked)
    assert_recovered_after(log[3], acked[-1])
    assert log[4]["hash"] == later.hash and later.seq == 5 and later.prev == log[3]["hash"]
    assert len(log) == 5
    assert [r["context"]["n"] for r in log if r["type"] != "audit.recovered"] == [0, 1, 2, 9]
    result = cli("verify", "--audit", file_url)
    assert result.code == 0, result.out
    assert "missing" not in result.err


async def test_appends_queued_behind_a_failing_batch_fail_with_it_and_leave_nothing(
    cli: Any,
    file_url: str,
    log_dir: Path,
    event: Event,
    faults: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    writing = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = FileSink._write
    held = [True]

    def hold_first(self: FileSink, records: Any, end_segment: bool) -> None:
        if held[0]:
            held[0] = False
            loop.call_soon_threadsafe(writing.set)
            release.wait(10)
        real(self, records, end_segment)

    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = await writer.append(event(0))
        monkeypatch.setattr(FileSink, "_write", hold_first)
        faults.fail("fdatasync")
        first = asyncio.create_task(writer.append(event(1)))
        await writing.wait()
        queued = [asyncio.create_task(writer.append(event(i))) for i in range(2, 12)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(first, *queued, return_exceptions=True)
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert hashes(stored_records(log_dir)) == [acked.hash]
        later = await writer.append(event(12))
    log = stored_records(log_dir)
    assert_recovered_after(log[1], acked)
    assert hashes(log) == [acked.hash, log[1]["hash"], later.hash]
    assert cli("verify", "--audit", file_url).code == 0


async def test_records_synced_before_the_write_failed_are_taken_back_too(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(i)) for i in range(2)]
        faults.fail("pwrite")  # the HEAD witness, written after the records were synced
        results = await asyncio.gather(
            *(writer.append(event(i)) for i in range(2, 5)), return_exceptions=True
        )
        assert faults.failed == {"pwrite": 1}
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert hashes(stored_records(log_dir)) == hashes(acked)
        assert head_file(log_dir)["hash"] == acked[-1].hash
        later = await writer.append(event(5))
    log = stored_records(log_dir)
    assert_recovered_after(log[2], acked[-1])
    assert hashes(log) == [*hashes(acked), log[2]["hash"], later.hash]
    assert cli("verify", "--audit", file_url).code == 0


async def test_a_failed_write_stays_out_even_if_the_process_stops_before_recovering(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(i)) for i in range(3)]
        faults.fail("fdatasync")
        with pytest.raises(AuditWriteError):
            await writer.append(event(3))
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        later = await writer.append(event(4))
    assert later.seq == 4 and later.prev == acked[-1].hash
    assert hashes(stored_records(log_dir)) == [*hashes(acked), later.hash]  # no recovery to report
    assert cli("verify", "--audit", file_url).code == 0


async def test_a_segment_created_by_a_failed_write_is_removed(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        faults.fail("fsync")  # the new segment's own fsync, before any record is written
        with pytest.raises(AuditWriteError):
            await writer.append(event(0))
        assert list((log_dir / "w0").glob("*.jsonl")) == []
        record = await writer.append(event(1))
    (recovered, stored) = stored_records(log_dir)
    assert recovered["type"] == "audit.recovered"
    assert recovered["seq"] == 1 and recovered["prev"] == GENESIS
    assert "repaired" not in recovered["context"]
    assert stored["hash"] == record.hash and record.seq == 2
    assert cli("verify", "--audit", file_url).code == 0


async def test_a_failed_seal_is_taken_back_and_the_append_before_it_stays(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    url = f"{file_url}?segment_size=1KiB"  # two records fill a segment
    async with open_audit_writer(url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(0))]
        faults.fail("fdatasync", after=1)  # the append's write works, the seal after it fails
        acked.append(await writer.append(event(1)))  # returned: it stays
        await writer.settled()  # the seal is written after the append has returned
        assert faults.failed == {"fdatasync": 1}
        assert not writer.healthy
        assert hashes(stored_records(log_dir)) == hashes(acked)
        await writer.maintain()
        assert writer.healthy
    log = stored_records(log_dir)
    assert hashes(log[:2]) == hashes(acked)
    assert_recovered_after(log[2], acked[-1])
    assert log[3]["type"] == "audit.sealed"  # the recovery filled the segment up again
    assert cli("verify", "--audit", file_url).code == 0


async def test_a_writer_that_cannot_take_a_failed_write_back_stays_unhealthy(
    cli: Any, file_url: str, log_dir: Path, event: Event, faults: Faults
) -> None:
    async with open_audit_writer(file_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(i)) for i in range(2)]
        faults.fail("fdatasync")
        heal = faults.fail("ftruncate", times=None)
        with pytest.raises(AuditWriteError):
            await writer.append(event(2))
        assert len(stored_records(log_dir)) == 3  # still there: it could not be cut off
        assert not writer.healthy
        with pytest.raises(AuditWriteError, match="cannot take a failed write back"):
            await writer.maintain()
        assert not writer.healthy
        with pytest.raises(AuditWriteError, match="cannot take a failed write back"):
            await writer.append(event(3))  # never chained onto the failed record
        assert len(stored_records(log_dir)) == 3
        heal()
        await writer.maintain()
        assert writer.healthy
        later = await writer.append(event(4))
    log = stored_records(log_dir)
    assert hashes(log[:2]) == hashes(acked)
    assert_recovered_after(log[2], acked[-1])
    assert hashes(log[3:]) == [later.hash]
    assert cli("verify", "--audit", file_url).code == 0


# -- PostgreSQL ----------------------------------------------------------------------------

FAILS_AT_COMMIT = "fails at commit"


def fail_commits(postgres: Any, table: str) -> None:
    """A deferred trigger: rows marked FAILS_AT_COMMIT are inserted, then COMMIT fails."""
    with postgres.admin() as conn:
        conn.execute(
            f"CREATE FUNCTION {table}_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
        )
        conn.execute(
            f"CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            f"WHEN (NEW.body ->> 'reason' = '{FAILS_AT_COMMIT}') EXECUTE FUNCTION {table}_fail()"
        )


def stored_rows(postgres: Any, table: str) -> tuple[list[tuple[int, str]], Any]:
    with postgres.admin() as conn:
        rows = conn.execute(f"SELECT seq, hash FROM {table} ORDER BY seq").fetchall()
        head = conn.execute(f"SELECT seq, hash FROM {table}_heads").fetchone()
    return [(int(seq), str(hash_)) for seq, hash_ in rows], head


@pytest.mark.postgres
async def test_a_failed_transaction_leaves_no_rows_and_the_chain_goes_on(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, event: Event
) -> None:
    async with open_audit_writer(pg_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = [await writer.append(event(i)) for i in range(3)]
        fail_commits(postgres, pg_table)
        doomed = [event(i).model_copy(update={"reason": FAILS_AT_COMMIT}) for i in (3, 4)]
        results = await asyncio.gather(
            *(writer.append(e) for e in [*doomed, event(5), event(6), event(7)]),
            return_exceptions=True,
        )
        assert all(isinstance(r, AuditWriteError) for r in results)
        assert "could not extend file" in str(results[0])
        rows, head = stored_rows(postgres, pg_table)
        assert rows == [(r.seq, r.hash) for r in acked]
        assert head == (acked[-1].seq, acked[-1].hash)
        later = await writer.append(event(8))
    rows, _ = stored_rows(postgres, pg_table)
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5]
    result = cli("query", "--audit", pg_url, "--type", "audit.recovered", "-o", "json")
    (recovered,) = json.loads(result.out)
    assert recovered["seq"] == 4 and recovered["prev"] == acked[-1].hash
    assert "repaired" not in recovered["context"]
    assert "unacknowledged" not in recovered["context"]
    assert later.seq == 5 and later.prev == recovered["hash"]
    result = cli("verify", "--audit", pg_url)
    assert result.code == 0, result.out
    assert result.err == ""


@pytest.mark.postgres
async def test_rows_of_a_commit_whose_answer_was_lost_are_marked_unacknowledged(
    cli: Any, postgres: Any, pg_url: str, pg_table: str, event: Event, monkeypatch: Any
) -> None:
    real = PostgresSink._store
    calls = [0]

    async def answer_lost(self: PostgresSink, params: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:  # committed, but the connection drops before the answer
            await real(self, params)
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        if calls[0] == 2:  # and the retry cannot reach the server to find out
            raise psycopg.OperationalError("connection refused")
        await real(self, params)

    async with open_audit_writer(pg_url, writer_id="w0", maintenance_interval=None) as writer:
        acked = await writer.append(event(0))
        monkeypatch.setattr(PostgresSink, "_store", answer_lost)
        results = await asyncio.gather(
            *(writer.append(event(i)) for i in (1, 2)), return_exceptions=True
        )
        assert all(isinstance(r, AuditWriteError) for r in results)
        later = await writer.append(event(3))
    assert later.seq == 5
    result = cli("query", "--audit", pg_url, "--type", "audit.recovered", "-o", "json")
    (recovered,) = json.loads(result.out)
    assert recovered["seq"] == 4
    assert recovered["context"]["unacknowledged"] == {"from": acked.seq + 1, "to": 3}
    result = cli("verify", "--audit", pg_url)
    assert result.code == 0, result.out
    assert "records seq 2-3 were stored by a write that failed" in result.err
    report = cli("report", "--audit", pg_url, "--since", "2020-01-01", "-o", "json")
    kinds = [finding["kind"] for finding in json.loads(report.out)["findings"]]
    assert "audit-records-unacknowledged" in kinds
