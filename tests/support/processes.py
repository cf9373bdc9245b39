"""Processes a test or bench watches but did not start itself: a writer's append process."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Final


def children(pid: int) -> list[int]:
    """The processes `pid` started that are still running."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def append_processes(pid: int) -> list[int]:
    """The audit append processes (`jitgate.audit.appendchild`) `pid` runs."""
    found: list[int] = []
    for child in children(pid):
        try:
            if b"appendchild" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except FileNotFoundError:  # ended meanwhile
            continue
    return found


def written_by(pid: int) -> int:
    """Bytes process `pid` has written (files and sockets: /proc/<pid>/io `wchar`)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "wchar":
            return int(value)
    raise LookupError("wchar")


ENDING: Final = 30.0  # seconds a process is given to end


async def ended(pid: int) -> None:
    """Return once process `pid` (not necessarily a child of ours) has ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(pidfd, gone.set)  # readable once the process has ended
    try:
        await asyncio.wait_for(gone.wait(), ENDING)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_with_append_processes(pid: int | None = None) -> float:
    """CPU seconds of process `pid` (this one when None) and of the audit append processes it
    runs: the two share an audit writer's work (`open_audit_writer(append_process=True)`)."""
    total = time.process_time() if pid is None else cpu_seconds(pid)
    for child in append_processes(os.getpid() if pid is None else pid):
        try:
            total += cpu_seconds(child)
        except FileNotFoundError:  # ended meanwhile
            continue
    return total
