"""Session recordings, the pure parts (jitgate.core.sessions): chunking by size and age, the
record payloads, the replay schedule and asciicast v2."""

from __future__ import annotations

import json

import pytest
from support import sessions
from support.clocks import NOW

from jitgate.core.sessions import (
    CastHeader,
    Chunk,
    ChunkPolicy,
    Coalescer,
    Ending,
    Frame,
    MalformedChunk,
    Resize,
    asciicast,
    chunk_of,
    end_event,
    frames_of,
    replay_steps,
)


def test_a_chunk_closes_at_max_bytes_and_a_large_write_fills_several() -> None:
    chunks = Coalescer(ChunkPolicy(max_bytes=4, max_delay_ms=100))
    assert chunks.add("stdout", 0, b"ab") == []
    first = chunks.add("stdout", 5, b"cdefghij")
    assert [(c.seq, c.data, c.frames) for c in first] == [
        (0, b"abcd", ((0, 2), (5, 2))),
        (1, b"efgh", ((5, 4),)),
    ]
    assert chunks.buffered == 2  # "ij" waits for more or for its age
    assert [c.data for c in chunks.drain()] == [b"ij"]
    assert chunks.closed == 3


def test_a_chunk_closes_max_delay_after_its_first_byte_and_streams_are_kept_apart() -> None:
    chunks = Coalescer(ChunkPolicy(max_bytes=1024, max_delay_ms=100))
    chunks.add("stdout", 0, b"out")
    chunks.add("stdin", 50, b"in")
    assert chunks.due(99) == []
    assert [(c.stream, c.data) for c in chunks.due(100)] == [("stdout", b"out")]
    # A write after the delay closes the late chunk before it is taken.
    closed = chunks.add("stdin", 200, b"more")
    assert [(c.seq, c.stream, c.data, c.frames) for c in closed] == [
        (1, "stdin", b"in", ((50, 2),))
    ]


def test_chunk_records_read_back_to_the_same_bytes_and_timing() -> None:
    chunk = Chunk("stdout", 3, ((10, 2), (40, 3)), b"\x00\xffabc")
    event = chunk.event("s-1", NOW)
    assert event.type == "session.chunk" and event.session == "s-1"
    assert chunk_of(event.context) == chunk
    assert frames_of([chunk]) == [Frame(10, "stdout", b"\x00\xff"), Frame(40, "stdout", b"abc")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stream": "stdlog"}, "unknown stream"),
        ({"data": "not base64!"}, "not base64"),
        ({"frames": [[0, 9]]}, "do not add up"),
        ({"frames": []}, "no valid frames"),
        ({"chunk": -1}, "without its number"),
    ],
)
def test_a_malformed_chunk_is_named(change: dict[str, object], message: str) -> None:
    context = dict(Chunk("stdout", 0, ((0, 2),), b"ok").event("s", NOW).context or {})
    with pytest.raises(MalformedChunk, match=message):
        chunk_of({**context, **change})


def test_started_carries_the_grant_facts_as_action_records_do() -> None:
    start = sessions.shell(
        session="s-1", reason="INC-1234", ticket="INC-1234", width=120, height=40
    )
    body = start.event(NOW).body(NOW)
    assert body["type"] == "session.started"
    assert body["action"] == {
        "verb": "exec",
        "resource": "pods",
        "name": "web-0",
        "subresource": "exec",
        "container": "app",
        "command": ["sh"],
        "tty": True,
        "stdin": True,
    }
    assert (body["grant"], body["request"], body["reason"]) == (
        "fix-web-0-x7k2",
        "fix-web-0",
        "INC-1234",
    )
    assert body["context"] == {
        "approvers": ["bob"],
        "ticket": "INC-1234",
        "terminal": {"width": 120, "height": 40},
    }


def test_how_a_session_ends_picks_the_record_type() -> None:
    exited = end_event("s", NOW, Ending.exited(3), offset_ms=5, chunks=2, sizes={"stdout": 7})
    assert (exited.type, exited.reason) == ("session.ended", "exited with code 3")
    assert exited.context == {
        "offsetMs": 5,
        "chunks": 2,
        "bytes": {"stdin": 0, "stdout": 7, "stderr": 0},
        "exitCode": 3,
    }
    cut = Ending.terminated("limit", "64 MiB of output")
    assert (cut.record_type, cut.reason) == ("session.terminated", "limit: 64 MiB of output")
    assert Ending.client_closed().record_type == "session.ended"


def test_replay_waits_between_outputs_faster_and_capped() -> None:
    frames = [
        Frame(0, "stdout", b"$ "),
        Frame(500, "stdin", b"l"),
        Frame(1000, "stdout", b"ls\r\n"),
        Frame(31000, "stderr", b"late"),
    ]
    assert replay_steps(frames) == [(0.0, b"$ "), (1.0, b"ls\r\n"), (30.0, b"late")]
    assert replay_steps(frames, speed=2, max_idle_s=2) == [
        (0.0, b"$ "),
        (0.5, b"ls\r\n"),
        (2.0, b"late"),
    ]
    with pytest.raises(ValueError, match="positive"):
        replay_steps(frames, speed=0)


def test_asciicast_is_byte_exact_for_characters_split_across_writes() -> None:
    snowman = "☃".encode()
    events: list[Frame | Resize] = [
        Frame(0, "stdout", b"hi " + snowman[:1]),
        Frame(20, "stdin", b"x"),
        Frame(40, "stdout", snowman[1:] + b"\r\n"),
        Resize(50, 100, 30),
    ]
    text = asciicast(CastHeader(80, 24, 1_700_000_000, "alice on prod/web-0", "sh"), events)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == {
        "version": 2,
        "width": 80,
        "height": 24,
        "timestamp": 1_700_000_000,
        "command": "sh",
        "title": "alice on prod/web-0",
    }
    assert lines[1:] == [[0.0, "o", "hi "], [0.04, "o", "☃\r\n"], [0.05, "r", "100x30"]]
    output = "".join(line[2] for line in lines[1:] if line[1] == "o").encode()
    assert output == b"hi " + snowman + b"\r\n"
    with_input = asciicast(CastHeader(80, 24, 0), events, include_input=True)
    assert [0.02, "i", "x"] in [json.loads(line) for line in with_input.splitlines()[1:]]


def test_chunk_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        ChunkPolicy(max_bytes=0)
