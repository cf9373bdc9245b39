import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgate.core.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("15m", dt.timedelta(minutes=15)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("1.5h", dt.timedelta(minutes=90)),
        ("500ms", dt.timedelta(milliseconds=500)),
        ("2h0m5s", dt.timedelta(hours=2, seconds=5)),
    ],
)
def test_parses_go_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "is zero"),
        ("0h0m", "is zero"),
        ("-5m", "is negative"),
        ("15", "not a Go duration"),
        ("15 m", "not a Go duration"),
        ("1d", "not a Go duration"),
        ("m", "not a Go duration"),
        ("", "non-empty"),
        ("99999999h", "longer than ten years"),
    ],
)
def test_rejects_bad_durations_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_duration(text)


def test_formats_like_go() -> None:
    assert format_duration(dt.timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(dt.timedelta(seconds=90)) == "1m30s"
    assert format_duration(dt.timedelta(milliseconds=1500)) == "1.5s"
    with pytest.raises(DurationError):
        format_duration(dt.timedelta(0))


@given(st.integers(min_value=1, max_value=10 * 365 * 24 * 3600 * 1000))
def test_format_then_parse_round_trips(milliseconds: int) -> None:
    value = dt.timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(value)) == value
