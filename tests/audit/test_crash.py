"""A writer killed with SIGKILL mid-append loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support.processes import append_processes, ended

from jitgate.audit import AuditEvent, open_audit_writer, open_log_reader
from jitgate.audit.query import Selection

WRITER = Path(__file__).with_name("crash_writer.py")


@pytest.mark.parametrize("appends", ["thread", "process"])
async def test_sigkill_loses_no_acknowledged_record(
    cli: Any, file_url: str, log_dir: Path, appends: str
) -> None:
    # Small segments, so the kill may also land in the middle of a rotation.
    url = f"{file_url}?segment_size=8KiB"
    process = await asyncio.create_subprocess_exec(
        sys.executable, WRITER, url, "16", appends, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    acknowledged: set[int] = set()
    while len(acknowledged) < 600:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, "the writer exited early"
        acknowledged.add(int(line))
    appender = append_processes(process.pid)
    assert len(appender) == (appends == "process")
    process.send_signal(signal.SIGKILL)
    rest, _ = await process.communicate()
    # A line cut off by the kill was never fully printed, so it does not count.
    acknowledged |= {int(line) for line in rest.split(b"\n")[:-1] if line}
    assert process.returncode == -signal.SIGKILL
    for pid in appender:
        # The append process ends with its writer (its socket closes), and only then lets
        # go of the log's lock, which it holds too: nothing appends behind a new writer.
        await ended(pid)

    reader = open_log_reader(url)
    try:
        stored = {r.record.seq for r in reader.records(Selection(internal=True))}
    finally:
        reader.close()
    assert acknowledged <= stored
    assert len(list((log_dir / "crashy").glob("*.jsonl"))) > 1

    async with open_audit_writer(url, writer_id="crashy", maintenance_interval=None) as writer:
        record = await writer.append(AuditEvent(type="action.allowed"))
    assert record.seq == max(stored) + 1 or record.seq == max(stored) + 2  # + a recovery record
    result = cli("verify", "--audit", url)
    assert result.code == 0, result.out
