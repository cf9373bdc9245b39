"""Reviewing break-glass grants: the webhook-stamped reviewer becomes one `grant.reviewed`
record, the `ReviewRequired` condition turns False, and the access review stops flagging it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from jitgate.cli.jitgate.main import main
from jitgate.core.clock import format_time, parse_time

REVIEW = {"jitgate.dev/review": "true", "jitgate.dev/review-comment": "justified: SEV1"}


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def reviewed(jit, name: str) -> bool:  # type: ignore[no-untyped-def]
    found = jit.find(name)
    conditions = (found or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "ReviewRequired" and c["status"] == "False" for c in conditions)


def unreviewed_findings(jit, capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[no-untyped-def]
    """`jitgate audit report` over the operator's log: its break-glass-unreviewed findings."""
    now = jit.clock.now()
    capsys.readouterr()
    code = main([
        "audit", "report", "--audit", jit.audit_url, "--output", "json",
        "--since", format_time(now - dt.timedelta(days=1)),
        "--until", format_time(now + dt.timedelta(days=1)),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    return [f for f in json.loads(out)["findings"] if f["kind"] == "break-glass-unreviewed"]


async def test_a_review_is_recorded_once_and_clears_the_flag(
    jit, capsys: pytest.CaptureFixture[str]
) -> None:
    jit.policy(breakGlass={"groups": ["oncall"], "maxDuration": "30m"})
    async with jit.running():
        jit.request("emergency", groups=("oncall",), breakGlass=True, duration="20m")
        await jit.until_phase("emergency", "Approved")
        grant = jit.get("emergency")["status"]["grant"]["name"]
        (finding,) = unreviewed_findings(jit, capsys)
        assert (finding["subject"], finding["user"]) == (f"prod/{grant}", "alice")
        # The annotation alone, without the webhook's stamp, is not a review.
        jit.annotate("emergency", REVIEW)
        await jit.settle()
        assert condition(jit.get("emergency"), "ReviewRequired")["status"] == "True"
        jit.clock.advance(dt.timedelta(minutes=5))
        jit.annotate("emergency", {"jitgate.dev/reviewed-by": "bob"})
        await jit.until(lambda: reviewed(jit, "emergency"))
        await jit.until(lambda: any(r == "Reviewed" for r, _ in jit.events("emergency")))
        # Seen again (another annotation, a resync, a restart): nothing more is recorded.
        jit.annotate("emergency", {"team": "db"})
        await jit.settle()
    async with jit.running():
        await jit.settle()
    obj = jit.get("emergency")
    flag = condition(obj, "ReviewRequired")
    assert (flag["status"], flag["reason"]) == ("False", "Reviewed")
    assert flag["message"] == "reviewed by bob: justified: SEV1"
    assert obj["status"]["phase"] == "Approved"
    assert condition(obj, "Approved")["reason"] == "BreakGlass"
    assert jit.types("emergency") == [
        "request.created",
        "request.approved",
        "grant.created",
        "grant.reviewed",
    ]
    record = jit.records()[-1]
    assert record["actor"] == {"user": "bob", "groups": []}
    assert parse_time(record["time"]) == jit.clock.now()  # when the operator saw it
    assert (record["grant"], record["request"], record["namespace"]) == (
        grant,
        "emergency",
        "prod",
    )
    assert record["reason"] == "justified: SEV1"
    assert [m for r, m in jit.events("emergency") if r == "Reviewed"] == [
        f"break-glass grant {grant} reviewed by bob: justified: SEV1"
    ]
    assert unreviewed_findings(jit, capsys) == []


async def test_a_finished_grant_is_reviewed_without_resetting_its_retention(jit) -> None:
    jit.policy(breakGlass={"groups": ["oncall"], "maxDuration": "30m"})
    async with jit.running(retention=dt.timedelta(hours=1)):
        jit.request("emergency", groups=("oncall",), breakGlass=True, duration="20m")
        await jit.until_phase("emergency", "Approved")
        jit.clock.advance(dt.timedelta(minutes=20))
        ended = await jit.until_phase("emergency", "Expired")
        ended_at = parse_time(condition(ended, "Granted")["lastTransitionTime"])
        jit.clock.advance(dt.timedelta(minutes=40))
        jit.annotate("emergency", {"jitgate.dev/review": "true", "jitgate.dev/reviewed-by": "bob"})
        await jit.until(lambda: reviewed(jit, "emergency"))
        flag = condition(jit.get("emergency"), "ReviewRequired")
        assert flag["message"] == "reviewed by bob"
        assert parse_time(flag["lastTransitionTime"]) == ended_at + dt.timedelta(minutes=40)
        # Deleted an hour after the grant ended, not an hour after the review.
        jit.clock.advance(dt.timedelta(minutes=19))
        await jit.settle()
        assert jit.find("emergency") is not None
        jit.clock.advance(dt.timedelta(minutes=1))
        await jit.until(lambda: jit.find("emergency") is None)
    assert jit.types("emergency") == [
        "request.created",
        "request.approved",
        "grant.created",
        "grant.expired",
        "request.expired",
        "grant.reviewed",
    ]
    assert "reason" not in jit.records()[-1]  # no comment


async def test_only_break_glass_requests_reviewed_by_someone_else_count(jit) -> None:
    jit.policy(breakGlass={"groups": ["oncall"], "maxDuration": "30m"})
    async with jit.running():
        jit.request("fix-web-0")
        await jit.until_phase("fix-web-0", "Pending")
        jit.approve("fix-web-0", "bob")
        await jit.until_phase("fix-web-0", "Approved")
        jit.annotate(
            "fix-web-0", {"jitgate.dev/review": "true", "jitgate.dev/reviewed-by": "carol"}
        )
        jit.request("own", groups=("oncall",), breakGlass=True)
        await jit.until_phase("own", "Approved")
        # The webhook refuses both; were they written past it, the operator ignores them.
        jit.annotate("own", {**REVIEW, "jitgate.dev/reviewed-by": "alice"})
        await jit.settle()
    assert not any(
        c["type"] == "ReviewRequired" for c in jit.get("fix-web-0")["status"]["conditions"]
    )
    assert condition(jit.get("own"), "ReviewRequired")["status"] == "True"
    assert "grant.reviewed" not in jit.types()
