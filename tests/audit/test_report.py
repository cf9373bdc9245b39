"""`jitgate audit report`: the periodic access review and its findings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from jitgate.audit import Action, Actor, AuditEvent, open_audit_writer
from jitgate.audit.report import BusinessHours

BERLIN_10 = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # Monday 10:00 in Berlin


def at(hours: float) -> dt.datetime:
    return BERLIN_10 + dt.timedelta(hours=hours)


def spec(*names: str, verb: str = "exec") -> dict[str, Any]:
    return {"actions": [{"verb": verb, "resource": "pods", "names": list(names)}]}


def request(who: str, name: str, when: dt.datetime, *objects: str, glass: bool = False) -> Any:
    return AuditEvent(
        type="request.created",
        time=when,
        actor=Actor(user=who),
        namespace="prod",
        request=name,
        reason="INC-1: stuck worker",
        context={"spec": spec(*objects), "breakGlass": glass},
    )


def approval(who: str, name: str, when: dt.datetime, comment: str | None) -> Any:
    return AuditEvent(
        type="request.approval",
        time=when,
        actor=Actor(user=who),
        namespace="prod",
        request=name,
        reason=comment,
        context={"decision": "Approve"},
    )


def granted(name: str, grant: str, when: dt.datetime, *, glass: bool = False) -> list[Any]:
    return [
        AuditEvent(type="request.approved", time=when, namespace="prod", request=name,
                   context={"breakGlass": glass}),
        AuditEvent(type="grant.created", time=when, namespace="prod", request=name, grant=grant,
                   context={"breakGlass": glass, "user": "erin" if glass else "alice"}),
    ]  # fmt: skip


def used(who: str, grant: str | None, when: dt.datetime, *, allowed: bool = True, **kw: Any) -> Any:
    return AuditEvent(
        type="action.allowed" if allowed else "action.denied",
        time=when,
        actor=Actor(user=who, groups=("developers",)),
        namespace="prod",
        action=Action(verb="exec", resource="pods", name="web-0", container="app", command=("sh",)),
        grant=grant,
        request=grant.rsplit("-", 1)[0] if grant else None,
        **kw,
    )


def review_log() -> list[AuditEvent]:
    events = [
        request("alice", "fix-web-0", at(0), "web-0"),
        approval("bob", "fix-web-0", at(0.1), "ok, INC-1 confirmed"),
        *granted("fix-web-0", "fix-web-0-g1", at(0.1)),
        used("alice", "fix-web-0-g1", at(0.5)),  # inside business hours
        used("alice", "fix-web-0-g1", at(11)),  # Monday 21:00 in Berlin
        used("alice", "fix-web-0-g1", at(11.5), dry_run=True),  # a dry run is not a use
        request("dave", "web-1-a", at(1), "web-1"),
        request("dave", "web-1-b", at(2), "web-1"),
        approval("carol", "web-1-b", at(2.1), None),  # no comment
        request("dave", "web-1-c", at(3), "web-1"),
        request("erin", "glass-1", at(4), "db-0", glass=True),
        *granted("glass-1", "glass-1-g", at(4), glass=True),
        request("erin", "glass-2", at(4.5), "db-1", glass=True),
        *granted("glass-2", "glass-2-g", at(4.5), glass=True),
        AuditEvent(type="grant.reviewed", time=at(5), actor=Actor(user="ciso"),
                   namespace="prod", grant="glass-2-g", reason="justified"),
    ]  # fmt: skip
    events += [
        used("mallory", None, at(6) + dt.timedelta(minutes=m), allowed=False) for m in range(6)
    ]
    events += [used("mallory", None, at(7), allowed=False)]  # alone an hour later: no new burst
    events += [used("alice", "fix-web-0-g1", at(5 * 24 + 1))]  # Saturday 11:00
    return events


@pytest.fixture
async def reviewed(file_url: str) -> str:
    async with open_audit_writer(file_url, writer_id="operator-0", maintenance_interval=None) as w:
        for event in review_log():
            await w.append(event)
    return file_url


def findings(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == kind]


async def test_the_review_as_json(cli: Any, reviewed: str) -> None:
    result = cli(
        "report", "--audit", reviewed, "--since", "2026-11-16", "--until", "2026-11-23",
        "--business-hours", "08:00-18:00", "--timezone", "Europe/Berlin", "--output", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["businessHours"] == "Mon-Fri 08:00-18:00 Europe/Berlin"

    (fix,) = [r for r in report["requests"] if r["request"] == "fix-web-0"]
    assert fix["requester"] == "alice" and fix["outcome"] == "approved"
    assert fix["actions"] == ["exec pods/web-0"]
    assert fix["approvals"][0]["user"] == "bob" and fix["approvals"][0]["comment"]
    assert fix["grant"] == "fix-web-0-g1" and fix["uses"] == 3
    # These action records predate approvers and reasons on them: the request's records say.
    (use,) = [u for u in report["usage"] if u["grant"] == "fix-web-0-g1"]
    assert (use["approvers"], use["reason"]) == (["bob"], "INC-1: stuck worker")

    outside = findings(report, "outside-business-hours")
    assert [f["detail"] for f in outside] == [
        "at Mon 21:00 CET under grant fix-web-0-g1",
        "at Sat 11:00 CET under grant fix-web-0-g1",
    ]
    (repeated,) = findings(report, "repeated-requests")
    assert repeated["subject"] == "exec pods/web-1" and repeated["user"] == "dave"
    assert "requested 3 times" in repeated["detail"]
    (silent,) = findings(report, "approval-without-comment")
    assert silent["user"] == "carol" and silent["subject"] == "prod/web-1-b"
    (glass,) = findings(report, "break-glass-unreviewed")
    assert glass["subject"] == "prod/glass-1-g" and glass["user"] == "erin"
    (burst,) = findings(report, "denial-burst")
    assert burst["user"] == "mallory" and burst["detail"] == "6 denied actions in 5 minutes"


async def test_the_review_as_a_table(cli: Any, reviewed: str) -> None:
    result = cli(
        "report", "--audit", reviewed, "--since", "2026-11-16", "--until", "2026-11-23",
        "--timezone", "Europe/Berlin", "--fail-on-findings",
    )  # fmt: skip
    assert result.code == 1  # there are findings
    text = result.out
    for heading in ("REQUESTS (", "USAGE (", "FINDINGS (6)"):
        assert heading in text
    assert "2026-11-16 10:00 CET  prod/fix-web-0" in text
    assert "bob (approved: 'ok, INC-1 confirmed')" in text
    assert "carol (approved, no comment)" in text
    assert "break-glass-unreviewed" in text


async def test_uses_say_who_approved_and_why_from_the_action_records(
    cli: Any, file_url: str
) -> None:
    # The request itself is older than the window: the action records alone answer.
    why: dict[str, Any] = {
        "context": {"approvers": ["bob", "carol"], "ticket": "INC-9"},
        "reason": "INC-9: oom",
    }
    async with open_audit_writer(file_url, writer_id="webhook-0", maintenance_interval=None) as w:
        await w.append(used("alice", "fix-web-0-g1", at(11), **why))  # Monday 21:00 in Berlin
    result = cli(
        "report", "--audit", file_url, "--since", "2026-11-16", "--until", "2026-11-23",
        "--timezone", "Europe/Berlin", "-o", "json",
    )  # fmt: skip
    report = json.loads(result.out)
    (use,) = report["usage"]
    assert (use["approvers"], use["reason"], use["ticket"]) == (
        ["bob", "carol"], "INC-9: oom", "INC-9"
    )  # fmt: skip
    (late,) = findings(report, "outside-business-hours")
    assert late["detail"] == (
        "at Mon 21:00 CET under grant fix-web-0-g1 approved by bob, carol: INC-9: oom"
    )
    table = cli("report", "--audit", file_url, "--since", "2026-11-16", "--until", "2026-11-23")
    assert "bob, carol" in table.out and "[INC-9] INC-9: oom" in table.out


async def test_the_window_limits_the_review(cli: Any, reviewed: str) -> None:
    result = cli(
        "report", "--audit", reviewed, "--since", "2026-11-21", "--until", "2026-11-22",
        "--timezone", "Europe/Berlin", "-o", "json",
    )  # fmt: skip
    report = json.loads(result.out)
    assert report["records"] == 1
    assert [f["kind"] for f in report["findings"]] == ["outside-business-hours"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--timezone", "Mars/Olympus", "not a known time zone"),
        ("--business-hours", "9-5", "must look like 08:00-18:00"),
        ("--business-hours", "18:00-08:00", "must end after they start"),
        ("--business-days", "Weekdays", "must look like Mon-Fri"),
        ("--burst-window", "soon", "not a duration"),
    ],
)
async def test_bad_review_settings_are_bad_usage(
    cli: Any, reviewed: str, flag: str, value: str, message: str
) -> None:
    result = cli("report", "--audit", reviewed, flag, value)
    assert result.code == 2
    assert result.one_sentence_error and message in result.err


def test_business_hours_in_a_time_zone() -> None:
    hours = BusinessHours.parse("08:00-18:00", "Mon-Fri", "Europe/Berlin")
    monday = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
    assert not hours.contains(monday.replace(hour=6, minute=59))  # 07:59 CET
    assert hours.contains(monday.replace(hour=7))  # 08:00 CET
    assert not hours.contains(monday.replace(hour=17))  # 18:00 CET
    summer = dt.datetime(2026, 7, 6, 6, 30, tzinfo=dt.UTC)  # a Monday, 08:30 CEST
    assert hours.contains(summer)
    weekend = BusinessHours.parse("00:00-24:00", "Sat-Sun", "UTC")
    assert weekend.contains(dt.datetime(2026, 11, 22, 23, 59, tzinfo=dt.UTC))
    assert weekend.describe() == "Sat-Sun 00:00-24:00 UTC"
