"""The session recorder against a real audit log on disk: every byte with its timing, chunks
chained as records, bounded memory with backpressure from a slow log, and a failed write that
ends the session instead of losing bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import os
import threading
from typing import Any

import pytest
from support import sessions
from support.clocks import ManualSleep

from jitgate.audit import open_audit_writer, open_log_reader
from jitgate.audit.query import Selection
from jitgate.audit.recorder import RecordingFailed, RecordingLimit, SessionRecorder
from jitgate.audit.sessionlog import Session, sessions_of
from jitgate.core.clock import ManualClock
from jitgate.core.sessions import (
    RECORDING_FAILED,
    REVOKED,
    ChunkPolicy,
    Ending,
    ForwardedConnection,
    Frame,
)

START = sessions.SHELL


def read_sessions(url: str, *, play: tuple[str, ...] = ()) -> list[Session]:
    reader = open_log_reader(url)
    try:
        records = [stored.record for stored in reader.records(Selection(types=("session.*",)))]
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return sessions_of(records, play=play)


def ms(n: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=n)


async def test_a_session_is_recorded_byte_for_byte_with_its_timing(
    file_url: str, clock: ManualClock
) -> None:
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(
            writer,
            START,
            clock=clock,
            policy=ChunkPolicy(max_bytes=8, max_delay_ms=100),
            sleep=None,
        )
        started = await recorder.start()
        await recorder.write("stdout", b"$ ")
        clock.advance(ms(40))
        await recorder.write("stdin", b"l")
        clock.advance(ms(30))
        await recorder.write("stdin", b"s\r")
        await recorder.write("stdout", b"ls\r\n")
        clock.advance(ms(100))
        await recorder.flush_due()  # the ticker's job: both open chunks are 100 ms old
        await recorder.resize(120, 40)
        clock.advance(ms(1000))
        await recorder.write("stdout", b"\x00\xffbinary and longer than a chunk")
        clock.advance(ms(30))
        ended = await recorder.end(Ending.exited(0))
    assert started.seq == 1 and ended.type == "session.ended"

    [session] = read_sessions(file_url, play=(START.session,))
    assert session.problems == ()
    assert session.frames() == [
        Frame(0, "stdout", b"$ "),
        Frame(40, "stdin", b"l"),
        Frame(70, "stdout", b"ls\r\n"),  # within one millisecond: chunk (chain) order
        Frame(70, "stdin", b"s\r"),
        Frame(1170, "stdout", b"\x00\xffbinary and longer than a chunk"),  # in 4 chunks
    ]
    summary = session.summary()
    assert {k: summary[k] for k in ("user", "pod", "grant", "request", "approvers", "reason")} == {
        "user": "alice",
        "pod": "web-0",
        "grant": "fix-web-0-x7k2",
        "request": "fix-web-0",
        "approvers": ["bob"],
        "reason": "INC-1234: worker stuck",
    }
    assert (summary["durationSeconds"], summary["ended"], summary["exitCode"]) == (
        1.2,
        "exited with code 0",
        0,
    )
    assert [(r.offset_ms, r.width, r.height) for r in session.resizes] == [(170, 120, 40)]


async def test_a_terminated_session_says_why(file_url: str, clock: ManualClock) -> None:
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, START, clock=clock, sleep=None)
        await recorder.start()
        await recorder.write("stdout", b"top\r\n")
        clock.advance(dt.timedelta(seconds=3))
        await recorder.end(Ending.terminated(REVOKED))
        with pytest.raises(RecordingFailed, match="has ended"):
            await recorder.write("stdout", b"after")
    [session] = read_sessions(file_url)
    assert session.how_ended == "terminated: revoked"
    assert session.duration == dt.timedelta(seconds=3)


async def test_a_session_records_at_most_its_limit_and_then_must_end(
    file_url: str, clock: ManualClock
) -> None:
    """The write that would take the session past `max_session_bytes` (all streams together)
    is refused, and so is everything after it; what was taken is recorded, and the session
    ends with the limit's reason."""
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, START, clock=clock, sleep=None, max_session_bytes=10)
        await recorder.start()
        await recorder.write("stdin", b"ls\r")
        await recorder.write("stdout", b"a  b\r\n")
        with pytest.raises(RecordingLimit) as limit:
            await recorder.write("stdout", b"$ ")
        assert (
            limit.value.message == "it reached 10 bytes recorded, the most one session may record"
        )
        with pytest.raises(RecordingLimit):
            await recorder.write("stderr", b"!")
        await recorder.end(limit.value.ending)
    [session] = read_sessions(file_url, play=(START.session,))
    assert session.how_ended == "terminated: limit: 10 bytes recorded"
    assert b"".join(frame.data for frame in session.frames()) == b"ls\ra  b\r\n"


async def test_the_ticker_closes_an_idle_chunk_without_more_writes(
    file_url: str, clock: ManualClock
) -> None:
    sleep = ManualSleep()

    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, START, clock=clock, sleep=sleep)
        await recorder.start()
        await recorder.write("stdout", b"prompt$ ")
        head = writer.head
        clock.advance(ms(100))
        await sleep.tick()  # the tick is over: what it closed is queued
        await recorder.durable()
        assert writer.head is not None and head is not None and writer.head.seq == head.seq + 1
        await recorder.end(Ending.client_closed())
    [session] = read_sessions(file_url)
    assert (session.chunk_count, session.how_ended) == (1, "client closed")


async def test_a_slow_log_slows_the_session_down_instead_of_buffering_without_bound(
    file_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(
            writer,
            START,
            clock=clock,
            policy=ChunkPolicy(max_bytes=1024, max_delay_ms=100),
            max_unacked_bytes=4096,
            sleep=None,
        )
        await recorder.start()
        disk, syncing = threading.Event(), threading.Event()
        real = os.fdatasync

        def slow_disk(fd: int) -> None:
            syncing.set()
            disk.wait(timeout=30)
            real(fd)

        monkeypatch.setattr(os, "fdatasync", slow_disk)
        blocked = asyncio.ensure_future(_write_all(recorder, 64 * 1024))
        assert await asyncio.to_thread(syncing.wait, 30)  # the log is held at the disk
        assert not blocked.done()  # the relay waits for the log
        assert recorder.unacked_bytes <= 4096 + 3 * 1024
        disk.set()
        await asyncio.wait_for(blocked, timeout=30)
        await recorder.end(Ending.exited(0))
    [session] = read_sessions(file_url, play=(START.session,))
    assert b"".join(f.data for f in session.frames()) == bytes(range(256)) * 256


async def _write_all(recorder: SessionRecorder, size: int) -> None:
    data = bytes(range(256)) * (size // 256)
    for start in range(0, size, 512):
        await recorder.write("stdout", data[start : start + 512])


async def test_a_failed_chunk_write_ends_the_session_and_the_gap_shows(
    file_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(
            writer, START, clock=clock, policy=ChunkPolicy(max_bytes=4), sleep=None
        )
        await recorder.start()
        await recorder.write("stdout", b"kept")
        await recorder.durable()
        real = os.fdatasync
        failures = [1]

        def broken_disk(fd: int) -> Any:
            if failures[0]:
                failures[0] -= 1
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real(fd)

        monkeypatch.setattr(os, "fdatasync", broken_disk)
        await recorder.write("stdout", b"lost")  # a full chunk: its append fails
        with pytest.raises(RecordingFailed, match="Input/output error"):
            await recorder.durable()
        with pytest.raises(RecordingFailed, match="Input/output error"):
            await recorder.write("stdout", b"more")  # and every write after it
        await recorder.end(Ending.terminated(RECORDING_FAILED))
    [session] = read_sessions(file_url)
    assert session.how_ended == "terminated: recording failed"
    assert session.problems  # the end record counts chunks the log does not hold


async def test_port_forward_records_connections_and_byte_counts(
    file_url: str, clock: ManualClock
) -> None:
    async with open_audit_writer(
        file_url, writer_id="gw-0", clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, sessions.FORWARD, clock=clock, sleep=None)
        await recorder.start()
        clock.advance(dt.timedelta(seconds=1))
        opened = ForwardedConnection("0", 5432, recorder.offset_ms())
        await recorder.connections([opened])
        clock.advance(dt.timedelta(seconds=2))
        closed = dataclasses.replace(
            opened, duration_ms=2000, to_pod=120, from_pod=4096, ended="closed"
        )
        await recorder.connections([closed])
        await recorder.end(Ending.client_closed())
    reader = open_log_reader(file_url)
    records = [s.record for s in reader.records(Selection(types=("session.connection",)))]
    assert [r.session for r in records] == ["5e2a-forward"] * 2
    assert [r.context for r in records] == [
        {"state": "opened", "requestId": "0", "port": 5432, "offsetMs": 1000},
        {"state": "closed", "requestId": "0", "port": 5432, "offsetMs": 1000, "durationMs": 2000,
         "bytes": {"toPod": 120, "fromPod": 4096}, "ended": "closed"},
    ]  # fmt: skip
    [session] = read_sessions(file_url)
    assert (session.kind, session.pod, session.how_ended) == (
        "portforward",
        "db-0",
        "client closed",
    )
    assert session.end is not None and session.end.context is not None
    assert session.end.context["connections"] == 1
    assert (session.connections, session.forwarded, session.problems) == (
        (closed,),
        (120, 4096),
        (),
    )
