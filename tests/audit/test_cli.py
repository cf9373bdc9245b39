"""`jitgate audit query|export|tail`: selections, formats, following."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jitgate.audit import Action, Actor, AuditEvent, AuditRecord, open_audit_writer
from jitgate.audit.query import CSV_COLUMNS
from jitgate.core.clock import ManualClock

Write = Callable[..., Awaitable[list[AuditRecord]]]
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def log(write: Write, file_url: str) -> list[AuditRecord]:
    """24 records, one an hour, ending about now, from two writers."""
    clock = ManualClock(NOW - dt.timedelta(hours=24, minutes=30))
    hourly: dict[str, Any] = {"clock": clock, "step": dt.timedelta(hours=1)}
    first = await write(file_url, 12, writer_id="webhook-0", **hourly)
    second = await write(file_url, 12, writer_id="operator-0", **hourly)
    return first + second


async def test_query_prints_a_table_in_time_order(cli: Any, file_url: str, log: Any) -> None:
    result = cli("query", "--audit", file_url)
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.split() == [
        "TIME", "WRITER", "SEQ", "TYPE", "USER", "NAMESPACE", "ACTION", "REQUEST", "GRANT",
        "APPROVERS", "REASON",
    ]  # fmt: skip
    assert len(rows) == 24
    times = [row.split()[0] for row in rows]
    assert times == sorted(times)
    assert "exec pods/web-0 -c app -- sh" in rows[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--user", "bob"], lambda r: r.user == "bob"),
        (["--type", "action.denied"], lambda r: r.type == "action.denied"),
        (["--type", "request.*"], lambda r: r.type.startswith("request.")),
        (["--grant", "fix-web-1-x7k2"], lambda r: r.grant == "fix-web-1-x7k2"),
        (["--request", "fix-web-2", "--request", "fix-web-3"],
         lambda r: r.request in ("fix-web-2", "fix-web-3")),
        (["--namespace", "prod", "--verb", "exec"], lambda r: True),
        (["--writer", "operator-0"], lambda r: r.writer == "operator-0"),
        (["--pod", "web-1"], lambda r: r.action.name == "web-1"),
        (["--object", "po/web-2", "--object", "pod/web-3"],
         lambda r: r.action.name in ("web-2", "web-3")),
        (["--since", "6h"], lambda r: r.when >= NOW - dt.timedelta(hours=6)),
        (["--until", "20h"], lambda r: r.when < NOW - dt.timedelta(hours=20)),
    ],
)  # fmt: skip
async def test_query_filters(
    cli: Any, file_url: str, log: list[AuditRecord], flags: list[str], expected: Any
) -> None:
    result = cli("query", "--audit", file_url, "--output", "json", *flags)
    assert result.code == 0, result.err
    found = [(r["writer"], r["seq"]) for r in json.loads(result.out)]
    wanted = sorted(log, key=lambda r: (r.time, r.writer, r.seq))
    assert found == [(r.writer, r.seq) for r in wanted if expected(r)]
    assert found  # every filter above selects something


async def test_query_with_rfc3339_window(cli: Any, file_url: str, log: list[AuditRecord]) -> None:
    since, until = log[2].time, log[5].time
    result = cli("query", "--audit", file_url, "-o", "json", "--since", since, "--until", until)
    assert sorted(r["seq"] for r in json.loads(result.out) if r["writer"] == "webhook-0") == [
        3, 4, 5
    ]  # fmt: skip


async def test_query_csv(cli: Any, file_url: str, log: list[AuditRecord]) -> None:
    result = cli("query", "--audit", file_url, "-o", "csv", "--type", "action.allowed")
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[0]["user"] and rows[0]["verb"] == "exec" and rows[0]["command"] == "sh"
    assert rows[0]["target"] == rows[0]["resource"] + "/" + rows[0]["name"]
    assert rows[0]["dryRun"] == "false" and rows[0]["hash"].startswith("sha256:")


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T00:00:00Z", "-3d"])
async def test_bad_times_are_bad_usage(cli: Any, file_url: str, log: Any, bad: str) -> None:
    result = cli("query", "--audit", file_url, f"--since={bad}")
    assert result.code == 2
    assert result.one_sentence_error and "--since" in result.err


async def test_no_match_says_so(cli: Any, file_url: str, log: Any) -> None:
    result = cli("query", "--audit", file_url, "--user", "nobody")
    assert result.code == 0 and result.out == ""
    assert result.err == "No audit records match.\n"


async def test_export_json_lines_exactly_as_hashed(
    cli: Any, file_url: str, log_dir: Path, log: Any, tmp_path: Path
) -> None:
    out = tmp_path / "export.jsonl"
    result = cli("export", "--audit", file_url, "--writer", "webhook-0", "--out", out)
    assert result.code == 0
    assert result.err == f"Exported 12 records to {out}.\n"
    segment = next((log_dir / "webhook-0").glob("*.jsonl"))
    assert out.read_bytes() == segment.read_bytes()


async def test_export_csv_to_stdout(cli: Any, file_url: str, log: Any) -> None:
    result = cli("export", "--audit", file_url, "--format", "csv", "--user", "alice")
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + 8 and all(row[4] == "alice" for row in rows[1:])


@pytest.mark.parametrize(
    "typed", ['=HYPERLINK("http://127.0.0.1/x","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)"]
)
async def test_csv_export_never_hands_a_spreadsheet_a_formula(
    cli: Any, file_url: str, typed: str
) -> None:
    # A reason and a command are typed by users; opening the export must not run them.
    async with open_audit_writer(file_url, writer_id="webhook-0", key=None) as writer:
        await writer.append(
            AuditEvent(
                type="action.denied",
                actor=Actor(user="mallory", groups=()),
                namespace="prod",
                action=Action(verb="exec", resource="pods", name="web-0", command=(typed,)),
                reason=typed,
            )
        )
    result = cli("export", "--audit", file_url, "--format", "csv")
    assert result.code == 0, result.err
    (row,) = list(csv.DictReader(io.StringIO(result.out)))
    assert row["reason"] == "'" + typed
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values() if cell)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--type", "action.denid"], "--type 'action.denid' is not a record type"),
        (["--type", "grants.*"], "--type 'grants.*' is not a record type"),
        (["--verb", "exec", "--verb", "port-forward"], "--verb 'port-forward' is not a verb"),
    ],
)
@pytest.mark.parametrize("command", ["query", "export", "tail"])
async def test_a_misspelled_filter_value_is_refused_not_answered_with_nothing(
    cli: Any, file_url: str, log: Any, command: str, flags: list[str], named: str
) -> None:
    result = cli(command, "--audit", file_url, *flags)
    assert result.code == 2 and result.one_sentence_error
    assert named in result.err and result.out == ""


async def test_known_types_and_families_are_accepted(cli: Any, file_url: str, log: Any) -> None:
    for kind in ("action.denied", "request.*", "audit.sealed", "webhook.auditProbe"):
        assert cli("query", "--audit", file_url, "--type", kind).code == 0


async def test_export_to_an_unwritable_place_leaves_nothing_behind(
    cli: Any, file_url: str, log: Any, tmp_path: Path
) -> None:
    result = cli("export", "--audit", file_url, "--out", tmp_path / "missing" / "x.jsonl")
    assert result.code == 2 and result.one_sentence_error
    assert "No such file or directory" in result.err


@pytest.mark.parametrize("lines", [["--lines", "3"], ["-n", "3"], ["-n3"]])
async def test_tail_prints_the_latest_records(
    cli: Any, file_url: str, log: Any, lines: list[str]
) -> None:
    result = cli("tail", "--audit", file_url, *lines)
    lines = result.out.splitlines()
    assert len(lines) == 3
    assert [line.split()[1] for line in lines] == [
        "operator-0#10",
        "operator-0#11",
        "operator-0#12",
    ]


async def test_tail_follows_new_records(
    file_url: str, log: Any, event: Callable[[int], AuditEvent], tmp_path: Path
) -> None:
    """A real `jitgate audit tail --follow` process sees records appended after it started."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitgate.cli.jitgate", "audit", "tail", "--audit", file_url,
        "--lines", "1", "--follow", "--interval", "20ms", "--max-records", "3", "-o", "json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None
    first = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    assert first["seq"] == 12
    async with open_audit_writer(file_url, writer_id="webhook-0", maintenance_interval=None) as w:
        appended = [await w.append(event(100 + i)) for i in range(3)]
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert [json.loads(line)["hash"] for line in out.splitlines()] == [r.hash for r in appended]


async def test_tail_n_is_a_count_and_says_where_the_namespace_went(
    cli: Any, file_url: str, log: Any
) -> None:
    # As tail(1): -n is how many records; a namespace is --namespace.
    result = cli("tail", "--audit", file_url, "-n", "prod")
    assert result.code == 2 and result.one_sentence_error and result.out == ""
    assert "--namespace prod" in result.err
    assert len(cli("tail", "--audit", file_url, "--namespace", "prod").out.splitlines()) == 10


@pytest.mark.parametrize(
    "flags",
    [
        ["--audit", "file:///elsewhere"],
        ["-o", "json", "-o", "csv"],
        ["--since", "1h", "--since", "2h"],
        ["--limit", "3", "--limit", "4"],
    ],
)
async def test_a_single_valued_flag_given_twice_is_refused(
    cli: Any, file_url: str, log: Any, flags: list[str]
) -> None:
    result = cli("query", "--audit", file_url, *flags)
    assert result.code == 2 and result.one_sentence_error and result.out == ""
    assert "was given twice" in result.err and "give it once" in result.err


async def test_repeatable_filters_still_take_many_values(cli: Any, file_url: str, log: Any) -> None:
    result = cli("query", "--audit", file_url, "--user", "alice", "--user", "bob", "-o", "json")
    assert result.code == 0
    assert {r["actor"]["user"] for r in json.loads(result.out)} == {"alice", "bob"}


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("web-0", "is not KIND/NAME"),
        ("widget/web-0", 'unknown kind "widget"'),
        ("pod/", "is not KIND/NAME"),
    ],
)
async def test_a_bad_object_is_refused(cli: Any, file_url: str, flag: str, named: str) -> None:
    result = cli("query", "--audit", file_url, "--object", flag)
    assert result.code == 2 and result.one_sentence_error and named in result.err


async def test_one_query_says_who_acted_on_a_pod_approved_by_whom_and_why(
    cli: Any, file_url: str
) -> None:
    """`jitgate audit query --pod web-0 -n prod`: the action records carry the grant's
    approvers, the request's reason and ticket (the webhook copies them from the grant)."""
    async with open_audit_writer(file_url, writer_id="webhook-0", key=None) as writer:
        for pod, user in (("web-0", "alice"), ("web-1", "carol"), ("web-0", "dave")):
            await writer.append(
                AuditEvent(
                    type="action.allowed",
                    actor=Actor(user=user),
                    namespace="prod",
                    action=Action(
                        verb="exec",
                        resource="pods",
                        name=pod,
                        container="app",
                        command=("sh", "-c", "kill -HUP 1"),
                        subresource="exec",
                    ),
                    request=f"{user}-exec-{pod}",
                    grant=f"{user}-exec-{pod}-x7k2",
                    reason=f"INC-7: {user} restarts the worker",
                    context={
                        "policy": "production",
                        "approvers": ["bob", "erin"],
                        "ticket": "INC-7",
                    },
                )
            )
        # A record from before action records carried approvers: still selected, columns empty.
        await writer.append(
            AuditEvent(
                type="action.denied",
                actor=Actor(user="mallory"),
                namespace="prod",
                action=Action(verb="exec", resource="pods", name="web-0"),
                reason="NoLiveGrant: mallory holds no live grant",
            )
        )
    table = cli("query", "--audit", file_url, "--pod", "web-0", "-n", "prod")
    assert table.code == 0, table.err
    header, alice, dave, mallory = table.out.splitlines()
    assert header.split()[-2:] == ["APPROVERS", "REASON"]
    assert "alice" in alice and "bob,erin" in alice and "INC-7: alice restarts" in alice
    assert "dave" in dave and "carol" not in table.out
    assert "mallory" in mallory and "NoLiveGrant" in mallory

    exported = cli("export", "--audit", file_url, "--format", "csv", "--object", "pod/web-0",
                   "--type", "action.allowed")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert [(r["user"], r["target"], r["container"], r["command"], r["approvers"], r["ticket"])
            for r in rows] == [
        ("alice", "pods/web-0", "app", "sh -c 'kill -HUP 1'", "bob;erin", "INC-7"),
        ("dave", "pods/web-0", "app", "sh -c 'kill -HUP 1'", "bob;erin", "INC-7"),
    ]  # fmt: skip
    assert rows[0]["reason"] == "INC-7: alice restarts the worker"


async def test_csv_flattens_request_and_grant_records_too(cli: Any, file_url: str) -> None:
    spec = {"actions": [{"verb": "delete", "resource": "deployments.apps", "names": ["web"]},
                        {"verb": "exec", "resource": "pods"}],
            "reason": "CHG-9: retire web", "ticket": "CHG-9"}  # fmt: skip
    chain = [{"user": "bob", "decision": "Approve"}, {"user": "erin", "decision": "Deny"}]
    async with open_audit_writer(file_url, writer_id="operator-0", key=None) as writer:
        await writer.append(
            AuditEvent(type="request.created", actor=Actor(user="alice"), namespace="prod",
                       request="retire", reason=spec["reason"], context={"spec": spec})
        )  # fmt: skip
        await writer.append(
            AuditEvent(type="grant.created", namespace="prod", request="retire", grant="g",
                       context={"actions": spec["actions"], "approvals": chain})
        )  # fmt: skip
    result = cli("export", "--audit", file_url, "--format", "csv")
    created, granted = list(csv.DictReader(io.StringIO(result.out)))
    assert (created["target"], created["ticket"]) == ("deployments.apps/web;pods/*", "CHG-9")
    assert (granted["target"], granted["approvers"]) == ("deployments.apps/web;pods/*", "bob")
