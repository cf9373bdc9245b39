"""Decision cost in the pure core: grant lookup with 10 vs 100,000 live grants indexed."""

from __future__ import annotations

import datetime as dt
import statistics
import time

from support.clocks import NOW

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import GrantSpec
from jitgate.core.grant_index import GrantIndex, IndexedGrant


def _grant(i: int) -> IndexedGrant:
    spec = GrantSpec.model_validate(
        {
            "user": f"user-{i}",
            "actions": [{"verb": "exec", "names": [f"pod-{i}"]}],
            "notBefore": NOW,
            "expiresAt": NOW + dt.timedelta(hours=1),
            "accessRequest": {"name": f"req-{i}"},
            "policy": "production",
        }
    )
    return IndexedGrant(f"ns-{i % 500}", f"grant-{i}", str(i), spec)


def _lookup_ns(index: GrantIndex, user_index: int, rounds: int) -> list[float]:
    attempt = AttemptedAction(
        "exec", f"ns-{user_index % 500}", "pods", f"pod-{user_index}", "app", ("ls",)
    )
    samples: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        found = index.authorizing(f"user-{user_index}", attempt, NOW)
        samples.append(time.perf_counter_ns() - started)
        assert found is not None
    return samples


def main() -> None:
    results = {}
    for size in (10, 100_000):
        index = GrantIndex()
        index.replace_all([_grant(i) for i in range(size)])
        samples = _lookup_ns(index, size // 2, 20_000)
        results[size] = (statistics.median(samples), statistics.quantiles(samples, n=100)[98])
    print(f"{'grants':>10} {'p50 µs':>8} {'p99 µs':>8}")
    for size, (p50, p99) in results.items():
        print(f"{size:>10} {p50 / 1000:>8.2f} {p99 / 1000:>8.2f}")
    ratio = results[100_000][0] / results[10][0]
    print(f"p50 ratio 100k/10 grants: {ratio:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
