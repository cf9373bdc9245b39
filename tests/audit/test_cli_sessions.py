"""`jitgate audit sessions`, `replay` and `export --format asciicast` on sessions recorded by
the session recorder into a real log, and `verify` naming one changed byte of a recording."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import sessions

from jitgate.audit import open_audit_writer
from jitgate.audit.keys import load_checkpoint_key
from jitgate.audit.recorder import SessionRecorder
from jitgate.cli.jitgate.audit import sessions_cmd
from jitgate.cli.jitgate.main import main
from jitgate.core.clock import ManualClock
from jitgate.core.events import ACTION_ALLOWED, Action, Actor, AuditEvent
from jitgate.core.sessions import (
    REVOKED,
    ChunkPolicy,
    Ending,
    ForwardedConnection,
    SessionStart,
)

from .conftest import KEY, START

SNOWMAN = "☃".encode()
SHELL = sessions.shell(session="7c9e6679742540de", width=100, height=30)
TOP = SessionStart(
    session="16fd2706c0a14f8c",
    kind="exec",
    user="carol",
    namespace="prod",
    pod="db-0",
    command=("top",),
    grant="carol-db-0",
    request="carol-db-0",
    approvers=("dave",),
    reason="slow queries",
)
# What the shell session's terminal showed, byte for byte: a character split across writes
# and bytes that are not UTF-8 included.
OUTPUT = b"$ " + b"ls\r\n" + b"a  b\r\n$ " + b"\xff\xfe" + SNOWMAN[:1] + SNOWMAN[1:] + b"\r\n"


def ms(n: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=n)


def allowed(start: SessionStart) -> AuditEvent:
    """The webhook's record of its decision on the gateway's stream: it names the session."""
    return AuditEvent(
        type=ACTION_ALLOWED,
        actor=Actor(user=start.user),
        namespace=start.namespace,
        action=Action(verb=start.kind, resource="pods", name=start.pod),
        grant=start.grant,
        request=start.request,
        session=start.session,
    )


async def record_two_sessions(url: str, checkpoint_key: Path | None = None) -> None:
    """alice's shell, whose session.started names the decision (this replica decided it), and
    carol's top, decided by another replica: only the decision names the session."""
    clock = ManualClock(START)
    async with open_audit_writer(
        url,
        writer_id="gw-0",
        key=KEY,
        clock=clock,
        maintenance_interval=None,
        checkpoint_key=load_checkpoint_key(checkpoint_key) if checkpoint_key else None,
    ) as writer:
        decided = await writer.append(allowed(SHELL))
        shell = SessionRecorder(
            writer,
            dataclasses.replace(SHELL, decision=(decided.writer, decided.seq)),
            clock=clock,
            policy=ChunkPolicy(max_bytes=8, max_delay_ms=50),
            sleep=None,
        )
        await shell.start()
        await shell.write("stdout", b"$ ")
        clock.advance(ms(500))
        await shell.write("stdin", b"ls\r")
        await shell.write("stdout", b"ls\r\n")
        clock.advance(ms(20))
        await shell.write("stdout", b"a  b\r\n$ ")
        clock.advance(ms(3000))
        await shell.flush_due()
        await shell.resize(120, 40)
        await shell.write("stdout", b"\xff\xfe" + SNOWMAN[:1])
        clock.advance(ms(10))
        await shell.write("stdout", SNOWMAN[1:] + b"\r\n")
        clock.advance(ms(100))
        await shell.end(Ending.exited(0))

        clock.advance(dt.timedelta(minutes=5))
        await writer.append(allowed(TOP))
        top = SessionRecorder(writer, TOP, clock=clock, sleep=None)
        await top.start()
        await top.write("stdout", b"load average: 0.01\r\n")
        clock.advance(dt.timedelta(seconds=90))
        await top.end(Ending.terminated(REVOKED))


def decision_records(cli: Any, url: str) -> dict[str, str]:
    """`writer:seq` of each action.allowed record, by the session it names."""
    queried = cli("query", "--audit", url, "--type", ACTION_ALLOWED, "-o", "json")
    return {r["session"]: f"{r['writer']}:{r['seq']}" for r in json.loads(queried.out)}


@pytest.fixture
async def recorded(file_url: str) -> str:
    await record_two_sessions(file_url)
    return file_url


async def test_sessions_are_listed_with_grant_approvers_reason_and_how_they_ended(
    cli: Any, recorded: str
) -> None:
    listed = cli("sessions", "--audit", recorded)
    assert listed.code == 0, listed.err
    header, shell, top = (re.split(r"\s{2,}", line) for line in listed.out.splitlines())
    assert header == [
        "SESSION", "START", "DURATION", "USER", "POD", "COMMAND", "GRANT", "REQUEST",
        "DECISION", "APPROVERS", "REASON", "ENDED",
    ]  # fmt: skip
    decisions = decision_records(cli, recorded)
    assert shell == [
        SHELL.session, "2026-11-16T09:00:00Z", "3s", "alice", "prod/web-0 (app)", "sh",
        "fix-web-0-x7k2", "fix-web-0", decisions[SHELL.session], "bob",
        "INC-1234: worker stuck", "exited with code 0",
    ]  # fmt: skip
    # Decided by another replica: found by the session id its decision carries.
    assert top[-5:] == [
        "carol-db-0",
        decisions[TOP.session],
        "dave",
        "slow queries",
        "terminated: revoked",
    ]

    as_json = cli("sessions", "--audit", recorded, "-o", "json", "--user", "carol")
    [only] = json.loads(as_json.out)
    assert only | {"start": None} == {
        "session": TOP.session, "writer": "gw-0", "kind": "exec", "user": "carol",
        "namespace": "prod", "pod": "db-0", "container": None, "command": ["top"],
        "grant": "carol-db-0", "request": "carol-db-0", "decision": decisions[TOP.session],
        "approvers": ["dave"],
        "reason": "slow queries", "start": None, "durationSeconds": 90.0,
        "ended": "terminated: revoked", "exitCode": None, "chunks": 1, "connections": None,
        "forwardedBytes": None, "problems": [],
    }  # fmt: skip
    since = cli("sessions", "--audit", recorded, "--since", "2026-11-16T09:01:00Z", "-o", "json")
    assert [s["session"] for s in json.loads(since.out)] == [TOP.session]
    none = cli("sessions", "--audit", recorded, "--pod", "nothing")
    assert (none.code, none.out, none.err) == (0, "", "No recorded sessions match.\n")


@pytest.mark.parametrize(
    "argv",
    [
        ("sessions", "-o", "yaml"),
        ("sessions", "--type", "session.chunk"),
        ("replay", SHELL.session, "--speed", "0"),
        ("replay", SHELL.session, "--speed", "fast"),
        ("replay", SHELL.session, "--max-idle", "soon"),
        ("replay", SHELL.session, "--speed", "2", "--speed", "3"),
        ("replay", "no-such-session"),
        ("export", "--format", "asciicast"),
        ("export", "--format", "asciicast", "--session", SHELL.session, "--user", "alice"),
        ("export", "--format", "cast", "--session", SHELL.session),
    ],
)
async def test_bad_usage_exits_2_with_one_sentence(cli: Any, recorded: str, argv: Any) -> None:
    command, *rest = argv
    result = cli(command, "--audit", recorded, *rest)
    assert result.code == 2, result
    assert result.one_sentence_error, result.err


def run_binary(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    capsysbinary.readouterr()
    code = main(["audit", *argv])
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


async def test_replay_writes_the_exact_bytes_with_their_timing(
    recorded: str, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(sessions_cmd, "sleep", pauses.append)
    code, out, err = run_binary(capsysbinary, "replay", "--audit", recorded, SHELL.session)
    assert code == 0, err
    assert out == OUTPUT
    assert pauses == [0.5, 0.02, 3.0, 0.01]  # "$ " at 0, then each output as it came
    assert err.startswith(f"[session {SHELL.session}: alice exec on prod/web-0 (sh), started ")
    assert err.endswith(f"[session {SHELL.session} exited with code 0]\n")

    pauses.clear()
    code, out, _ = run_binary(
        capsysbinary,
        "replay",
        "--audit",
        recorded,
        SHELL.session,
        "--speed",
        "2",
        "--max-idle",
        "1s",
    )
    assert (code, out) == (0, OUTPUT)
    assert pauses == [0.25, 0.01, 1.0, 0.005]


async def test_asciicast_export_is_byte_exact_with_timing(
    cli: Any, recorded: str, tmp_path: Path
) -> None:
    cast = tmp_path / "session.cast"
    exported = cli(
        "export", "--audit", recorded, "--format", "asciicast", "--session", SHELL.session,
        "--out", cast,
    )  # fmt: skip
    assert exported.code == 0, exported.err
    header, *events = [json.loads(line) for line in cast.read_text().splitlines()]
    assert header == {
        "version": 2, "width": 100, "height": 30, "timestamp": int(START.timestamp()),
        "command": "sh", "title": "alice on prod/web-0",
    }  # fmt: skip
    assert [e[:2] for e in events] == [
        [0.0, "o"],
        [0.5, "o"],
        [0.52, "o"],
        [3.52, "r"],
        [3.52, "o"],
        [3.53, "o"],
    ]
    text = "".join(e[2] for e in events if e[1] == "o")
    # U+FFFD for the two bytes that are not UTF-8 (asciicast holds text); the rest exact.
    assert text.encode() == OUTPUT.replace(b"\xff\xfe", "\ufffd\ufffd".encode())
    assert events[3][2] == "120x40"
    assert events[2][2] == "a  b\r\n$ "  # one write, though it spans two chunks


async def test_one_changed_byte_of_a_recording_is_named_by_verify(
    cli: Any, file_url: str, log_dir: Path, key_file: Path, tmp_path: Path
) -> None:
    signer = tmp_path / "checkpoint.key"
    made = cli("keygen", "jitgate.example.com/prod", "--out", signer)
    verifier = tmp_path / "checkpoint.pub"
    verifier.write_text(made.out)
    await record_two_sessions(file_url, checkpoint_key=signer)
    assert cli("verify", "--audit", file_url, "--key-file", key_file).code == 0
    assert cli("verify", "--audit", file_url, "--verifier-key", verifier).code == 0

    # A chunk proven on its own, offline, like any record.
    [segment] = sorted((log_dir / "gw-0").glob("*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    number, chunk = next(
        (i, json.loads(line))
        for i, line in enumerate(lines)
        if json.loads(line)["type"] == "session.chunk" and b"a  b" in _data(json.loads(line))
    )
    proof = tmp_path / "chunk.proof"
    assert cli("prove", "--audit", file_url, f"gw-0:{chunk['seq']}", "--out", proof).code == 0
    assert cli("verify-proof", proof, "--verifier-key", verifier).code == 0

    # "a  b" becomes "a  c" in the stored chunk: one byte.
    changed = _data(chunk).replace(b"a  b", b"a  c")
    chunk["context"]["data"] = base64.b64encode(changed).decode()
    lines[number] = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    segment.write_bytes(b"".join(lines))

    where = f"record seq {chunk['seq']} at gw-0/{segment.name} line {number + 1} was edited"
    with_key = cli("verify", "--audit", file_url, "--key-file", key_file)
    assert with_key.code == 1 and where in with_key.out, with_key.out
    public = cli("verify", "--audit", file_url, "--verifier-key", verifier)
    assert public.code == 1 and where in public.out, public.out


def _data(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["context"]["data"])


async def test_a_missing_chunk_is_named_and_the_session_is_not_replayed(
    cli: Any, recorded: str, log_dir: Path
) -> None:
    [segment] = sorted((log_dir / "gw-0").glob("*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    first_chunk = next(i for i, line in enumerate(lines) if b'"session.chunk"' in line)
    segment.write_bytes(b"".join(lines[:first_chunk] + lines[first_chunk + 1 :]))
    replayed = cli("replay", "--audit", recorded, SHELL.session)
    assert replayed.code == 1
    assert "chunk 0 is missing" in replayed.err and "run `jitgate audit verify`" in replayed.err
    listed = cli("sessions", "--audit", recorded)
    assert "(chunk 0 is missing)" in listed.out


async def test_sessions_on_postgres(cli: Any, pg_url: str) -> None:
    await record_two_sessions(pg_url)
    listed = cli("sessions", "--audit", pg_url, "-o", "json")
    assert listed.code == 0, listed.err
    assert [s["ended"] for s in json.loads(listed.out)] == [
        "exited with code 0",
        "terminated: revoked",
    ]
    cast = cli("export", "--audit", pg_url, "--format", "asciicast", "--session", TOP.session)
    assert cast.code == 0 and "load average" in cast.out


async def test_session_records_are_selected_and_exported_by_session_id(
    cli: Any, recorded: str
) -> None:
    exported = cli("export", "--audit", recorded, "--format", "csv", "--session", TOP.session)
    assert exported.code == 0, exported.err
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert [(r["type"], r["session"]) for r in rows] == [
        ("action.allowed", TOP.session),  # the decision that let it open
        ("session.started", TOP.session),
        ("session.chunk", TOP.session),
        ("session.terminated", TOP.session),
    ]


async def test_a_port_forward_is_listed_with_its_connections_and_replay_lists_them(
    cli: Any, file_url: str
) -> None:
    forward = sessions.FORWARD
    clock = ManualClock(START)
    async with open_audit_writer(
        file_url, writer_id="gw-0", key=KEY, clock=clock, maintenance_interval=None
    ) as writer:
        recorder = SessionRecorder(writer, forward, clock=clock, sleep=None)
        await recorder.start()
        first = ForwardedConnection("0", 5432, 0)
        second = ForwardedConnection("1", 5432, 1500)
        await recorder.connections([first, second])
        clock.advance(ms(2000))
        await recorder.connections(
            [
                dataclasses.replace(first, duration_ms=2000, to_pod=1000, from_pod=24,
                                    ended="closed"),
                dataclasses.replace(second, duration_ms=500, to_pod=7, from_pod=0,
                                    ended="reset by the client"),
            ]
        )  # fmt: skip
        await recorder.end(Ending.client_closed())

    listed = cli("sessions", "--audit", file_url)
    [row] = [re.split(r"\s{2,}", line) for line in listed.out.splitlines()[1:]]
    assert row[4:6] == ["prod/db-0", "portforward: 2 connections, 1007 B to the pod, 24 B from it"]
    [summary] = json.loads(cli("sessions", "--audit", file_url, "-o", "json").out)
    assert (summary["connections"], summary["forwardedBytes"]) == (
        2, {"toPod": 1007, "fromPod": 24}
    )  # fmt: skip

    replayed = cli("replay", "--audit", file_url, forward.session)
    assert replayed.code == 0, replayed.err
    assert "[a port-forward session has no terminal recording; 2 connections, 1007 B to the " \
        "pod, 24 B from it]" in replayed.err  # fmt: skip
    assert [re.split(r"\s{2,}", line.strip()) for line in replayed.out.splitlines()] == [
        ["OPENED", "DURATION", "PORT", "TO POD", "FROM POD", "REQUEST", "ENDED"],
        ["0ms", "2s", "5432", "1000", "24", "0", "closed"],
        ["1s", "500ms", "5432", "7", "0", "1", "reset by the client"],
    ]
    exported = cli("export", "--audit", file_url, "--format", "asciicast", "--session",
                   forward.session)  # fmt: skip
    assert exported.code == 2
    assert "has no terminal recording" in exported.err
