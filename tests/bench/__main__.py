"""`make bench`: run every benchmark module's `main()` and print its figures.

Benchmarks are not tests: they print throughput, latency and ratios against a baseline
measured in the same run, and fail only when they cannot run at all.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

# The benchmarks share tests/support with the tests, imported the way pytest's
# `pythonpath = ["tests"]` makes it importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = (
    "tests.bench.core_bench",
    "tests.bench.audit_bench",
    "tests.bench.webhook_bench",
    "tests.bench.outcomes_bench",
    "tests.bench.apiserver_bench",
    "tests.bench.session_bench",
    "tests.bench.operator_bench",
)


def run(names: list[str]) -> int:
    failed = []
    for name in names:
        module = importlib.import_module(name)
        print(f"\n=== {name.rsplit('.', 1)[-1]} ===", flush=True)
        started = time.perf_counter()
        try:
            module.main()
        except Exception as error:  # report and carry on with the others
            failed.append(name)
            print(f"benchmark {name} failed: {error!r}", file=sys.stderr)
        print(f"({time.perf_counter() - started:.1f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    wanted = [f"tests.bench.{arg}" for arg in sys.argv[1:]] or list(BENCHMARKS)
    raise SystemExit(run(wanted))
