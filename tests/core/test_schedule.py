"""AccessPolicy schedules: open or closed at an instant, the next change, daylight saving in
Europe/Berlin and America/New_York, and the decision on a protected action under them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError
from support.clocks import NOW
from support.objects import grant_model, policy_model

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.protected import decide
from jitgate.core.api import AccessPolicy, Schedule
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.policy import Exemptions, Policies
from jitgate.core.schedule import describe, is_open, next_change


def utc(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def schedule(zone: str, *windows: dict[str, Any], **extra: Any) -> Schedule:
    return Schedule.model_validate({"timeZone": zone, "windows": list(windows), **extra})


OFFICE = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}


def test_office_hours_in_berlin_follow_winter_time() -> None:
    berlin = schedule("Europe/Berlin", OFFICE)
    assert describe(berlin) == "Mon-Fri 09:00-17:00 Europe/Berlin"
    # Friday 2026-11-20: 09:00 CET is 08:00 UTC, 17:00 CET is 16:00 UTC.
    assert not is_open(berlin, utc(2026, 11, 20, 7, 59))
    assert is_open(berlin, utc(2026, 11, 20, 8, 0))
    assert is_open(berlin, utc(2026, 11, 20, 15, 59))
    assert not is_open(berlin, utc(2026, 11, 20, 16, 0))
    # Closed on Saturday; it opens next on Monday at 09:00 CET.
    assert not is_open(berlin, NOW)
    assert next_change(berlin, NOW) == utc(2026, 11, 23, 8, 0)
    assert next_change(berlin, utc(2026, 11, 23, 8, 0)) == utc(2026, 11, 23, 16, 0)


def test_berlin_spring_forward_moves_the_window_and_a_missing_hour_opens_at_the_change() -> None:
    # 2026-03-29: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
    night = schedule("Europe/Berlin", {"days": ["Sun"], "start": "02:30", "end": "04:00"})
    assert not is_open(night, utc(2026, 3, 29, 0, 59, 59))
    # 02:30 never happens that night: the window opens when the clocks jump to 03:00.
    assert next_change(night, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)
    assert is_open(night, utc(2026, 3, 29, 1, 0))
    assert next_change(night, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 2, 0)  # 04:00 CEST
    # Office hours: Friday before in CET, Monday after in CEST.
    office = schedule("Europe/Berlin", OFFICE)
    assert next_change(office, utc(2026, 3, 27, 16, 0)) == utc(2026, 3, 30, 7, 0)


def test_berlin_fall_back_keeps_a_repeated_hour_open_twice() -> None:
    # 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC).
    night = schedule("Europe/Berlin", {"days": ["Sun"], "start": "02:00", "end": "03:00"})
    assert next_change(night, utc(2026, 10, 24, 23, 0)) == utc(2026, 10, 25, 0, 0)
    for minute in (0, 30, 60, 90, 119):  # 02:00 CEST through 02:59 CET: two real hours
        assert is_open(night, utc(2026, 10, 25, 0, 0) + dt.timedelta(minutes=minute))
    assert next_change(night, utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 2, 0)
    office = schedule("Europe/Berlin", OFFICE)
    assert next_change(office, utc(2026, 10, 23, 15, 0)) == utc(2026, 10, 26, 8, 0)


def test_new_york_office_hours_across_both_changes() -> None:
    office = schedule("America/New_York", OFFICE)
    # 2026-03-08 springs forward: Friday closes at 17:00 EST, Monday opens at 09:00 EDT.
    assert next_change(office, utc(2026, 3, 6, 20, 0)) == utc(2026, 3, 6, 22, 0)
    assert next_change(office, utc(2026, 3, 6, 22, 0)) == utc(2026, 3, 9, 13, 0)
    # 2026-11-01 falls back: Friday closes at 17:00 EDT, Monday opens at 09:00 EST.
    assert next_change(office, utc(2026, 10, 30, 20, 0)) == utc(2026, 10, 30, 21, 0)
    assert next_change(office, utc(2026, 10, 30, 21, 0)) == utc(2026, 11, 2, 14, 0)
    # The night the clocks change, 01:30 happens twice; a 01:00-02:00 window holds both.
    night = schedule("America/New_York", {"days": ["Sun"], "start": "01:00", "end": "02:00"})
    assert is_open(night, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert is_open(night, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert not is_open(night, utc(2026, 11, 1, 7, 0))


def test_a_window_past_midnight_and_one_always_open() -> None:
    nights = schedule("UTC", {"days": ["Fri"], "start": "22:00", "end": "06:00"})
    assert describe(nights) == "Fri 22:00-06:00 UTC"
    assert is_open(nights, utc(2026, 11, 20, 23, 0))
    assert is_open(nights, utc(2026, 11, 21, 5, 59))
    assert not is_open(nights, utc(2026, 11, 21, 6, 0))
    always = schedule("UTC", {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]})
    assert is_open(always, NOW)
    assert next_change(always, NOW) is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"timeZone": "Mars/Olympus_Mons", "windows": [OFFICE]}, "unknown time zone"),
        ({"windows": [{**OFFICE, "end": "09:00"}]}, "start and end must differ"),
        ({"windows": [OFFICE], "outsideWindow": {"action": "RequireApprovals"}}, "needs approvals"),
        ({"windows": [OFFICE], "outsideWindow": {"approvals": 2}}, "Deny takes none"),
    ],
)
def test_a_schedule_that_cannot_work_does_not_validate(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        policy_model(schedule=fields)


# ------------------------------------------------------------------ the webhook's decision


@dataclass
class View:
    """What the webhook's cache would hold: policies, namespaces and grants."""

    policies: Policies
    grants: GrantIndex = field(default_factory=GrantIndex)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: {"prod": {}})
    synced: bool = True

    def chain_digest(self, grant: IndexedGrant) -> str:
        return "sha256:" + "0" * 64


EXEC = AttemptedAction("exec", "prod", "pods", "web-0", "app", ("ls",))
BERLIN_OFFICE = {"timeZone": "Europe/Berlin", "windows": [OFFICE]}
MONDAY_10 = utc(2026, 11, 23, 9, 0)  # 10:00 CET
SATURDAY = NOW


def view(*policies: AccessPolicy, **grant_fields: Any) -> View:
    index = GrantIndex()
    if grant_fields:
        spec = grant_model(**grant_fields).spec
        index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-1", spec))
    return View(Policies.of(policies), index)


def verdict(cache: View, at: dt.datetime, user: str = "alice") -> Any:
    return decide(EXEC, user, (), cache=cache, exemptions=Exemptions(), now=at)


def test_a_grant_authorizes_inside_the_window_and_not_once_it_closed() -> None:
    cache = view(
        policy_model(schedule=BERLIN_OFFICE),
        not_before=MONDAY_10,
        expires_at=MONDAY_10 + dt.timedelta(days=1),
    )
    assert verdict(cache, MONDAY_10).allowed
    closed = verdict(cache, utc(2026, 11, 23, 16, 0))
    assert not closed.allowed
    assert closed.reason == "OutsideWindow"
    assert closed.message == (
        "jitgate denied exec into pod web-0 in namespace prod (container app, command ls): "
        "AccessPolicy production allows it only Mon-Fri 09:00-17:00 Europe/Berlin, and that "
        "window is closed; it opens next at Tue 2026-11-24 09:00 CET (2026-11-24T08:00:00Z)"
    )


def test_without_a_grant_a_closed_window_says_when_it_opens() -> None:
    denied = verdict(view(policy_model(schedule=BERLIN_OFFICE)), SATURDAY)
    assert denied.reason == "OutsideWindow"
    assert denied.message.endswith("opens next at Mon 2026-11-23 09:00 CET (2026-11-23T08:00:00Z)")


def test_require_approvals_outside_needs_a_grant_approved_for_outside() -> None:
    scheduled = {**BERLIN_OFFICE, "outsideWindow": {"action": "RequireApprovals", "approvals": 2}}
    policy = policy_model(schedule=scheduled)
    window: dict[str, Any] = {
        "not_before": SATURDAY,
        "expires_at": SATURDAY + dt.timedelta(hours=1),
    }
    inside_only = verdict(view(policy, **window), SATURDAY)
    assert not inside_only.allowed
    assert "grant fix-web-0-x7k2 was approved for inside it only: it needs 2 approvals" in (
        inside_only.message
    )
    outside = grant_model(**window).spec.model_copy(
        update={"approved_outside_window": ["production"]}
    )
    index = GrantIndex()
    index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-1", outside))
    assert verdict(View(Policies.of([policy]), index), SATURDAY).allowed


def test_every_schedule_must_be_satisfied_and_break_glass_is_not_bound_by_windows() -> None:
    weekend = {"timeZone": "UTC", "windows": [{"days": ["Sat", "Sun"]}]}
    both = (policy_model(schedule=weekend), policy_model("office", schedule=BERLIN_OFFICE))
    window: dict[str, Any] = {
        "not_before": SATURDAY,
        "expires_at": SATURDAY + dt.timedelta(hours=1),
    }
    assert verdict(view(both[0], **window), SATURDAY).allowed
    refused = verdict(view(*both, **window), SATURDAY)
    assert not refused.allowed
    assert "AccessPolicy office allows it only Mon-Fri" in refused.message
    glass = grant_model(**window).spec.model_copy(update={"break_glass": True})
    index = GrantIndex()
    index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-1", glass))
    assert verdict(View(Policies.of(both), index), SATURDAY).allowed
