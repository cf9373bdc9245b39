"""The fixed time every test tier starts from (with `jitgate.core.clock.ManualClock` where
time must move).

Tests that compare rendered timestamps write them out literally (`2026-11-21T10:00:00Z`), so
a reader sees what a user would; everything else derives its times from `NOW`.
"""

from __future__ import annotations

import datetime as dt

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)  # a Saturday, 10:00 UTC
