"""The latency quantiles the benchmarks print: the nearest rank, over samples already sorted.

(`operator_bench` and `audit_bench` interpolate between ranks with `statistics.quantiles`.)
"""

from __future__ import annotations

from collections.abc import Sequence


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (0 <= q < 1) of the sorted `ordered`: its element at rank floor(q * n)."""
    return ordered[int(len(ordered) * q)]
