"""Decision cost in the pure core: grant lookup with 10 vs 100,000 live grants indexed; an
autoApprove rule's evaluation (CEL) and a schedule's next change, as the operator pays them."""

from __future__ import annotations

import datetime as dt
import statistics
import time

from support.clocks import NOW

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import AccessPolicy, AccessRequest, GrantSpec, Schedule
from jitgate.core.autoapprove import evaluate, inputs
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.schedule import next_change


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
    _rules()


_RULE = (
    "'oncall' in requester.groups && request.actions.all(a, a.verb == 'exec' && "
    "size(a.command) > 0 && a.command[0] in ['ls', 'cat']) && "
    "time.weekday in ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'] && time.hour >= 9 && time.hour < 17"
)


def _rules() -> None:
    """One rule evaluated on one request (compiled once, as the operator caches it), and the
    next change of an office-hours schedule across a daylight-saving change."""
    policy = AccessPolicy.model_validate(
        {
            "metadata": {"name": "production"},
            "spec": {
                "namespaces": {"names": ["prod"]},
                "actions": ["exec"],
                "approvers": {"groups": ["sre"]},
                "autoApprove": {"rules": [{"name": "on-call", "expression": _RULE}]},
            },
        }
    )
    request = AccessRequest.model_validate(
        {
            "metadata": {"name": "fix", "namespace": "prod"},
            "spec": {
                "actions": [{"verb": "exec", "names": ["web-0"], "command": ["ls"]}],
                "reason": "INC-1",
                "requester": {"user": "alice", "groups": ["developers", "oncall"]},
            },
        }
    )
    facts = inputs(request, {"tier": "gold"}, dt.timedelta(minutes=15), NOW, "Europe/Berlin")
    evaluate(policy, facts)  # compiles and caches
    samples = []
    for _ in range(2_000):
        started = time.perf_counter_ns()
        evaluate(policy, facts)
        samples.append(time.perf_counter_ns() - started)
    p50, p99 = statistics.median(samples), statistics.quantiles(samples, n=100)[98]
    print(f"autoApprove rule evaluation: p50 {p50 / 1000:.1f} µs, p99 {p99 / 1000:.1f} µs")
    office = Schedule.model_validate(
        {"timeZone": "Europe/Berlin", "windows": [{"days": ["Mon", "Fri"], "start": "09:00"}]}
    )
    before_change = dt.datetime(2026, 3, 27, 16, 0, tzinfo=dt.UTC)
    started = time.perf_counter_ns()
    for _ in range(200):
        next_change(office, before_change)
    print(f"schedule next change: {(time.perf_counter_ns() - started) / 200 / 1000:.1f} µs")


if __name__ == "__main__":
    main()
