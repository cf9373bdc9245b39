"""Durable audit appends: one fsync (or commit) per append vs group commit.

For each sink (file, PostgreSQL) and 1, 16 and 64 concurrent appenders sharing one
writer: appends per second and p50/p99 latency of `append()` (until durable), with
`max_batch=1` (inline: serialised, one fsync per append) and with group commit; then
the ratio group/inline. On the file sink also group commit with the Merkle tree and
signed checkpoints (`tlog`), checkpointing every 50 ms so that several checkpoints fall
inside each short run (a stress figure: the product signs one per second while writing).
The target figure is a sustained run as the product is configured: 64 appenders for
`SUSTAINED_BUDGET` seconds, checkpoints at the product's interval, alternating with the same
run without them, on uvloop and with an append process as `jitgate webhook` runs its writer
(the one with many concurrent appenders: up to 64 reviews in flight); the same on the
standard library's loop and the writer's thread (as the operator runs it) is printed beside
it; with it the CPU time per append (its writer thread and append process included, the
building of each event too) and the load average, the figures that survive a busy machine:
64 appenders wait on one batch at a time, so appends/s is ~1 / (CPU per append + each
batch's fsync and thread hand-offs / 64). Each run is bounded by a count and a time
budget. Last, `jitgate audit verify` as an auditor runs it over a signed log of
`VERIFY_RECORDS` records, with the HMAC key only (chain and MACs) and with the public key
too (checkpoint history and the public check): records per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop
from support import postgres
from support.processes import cpu_with_append_processes

from jitgate.audit import Action, Actor, AuditEvent, open_audit_writer
from jitgate.audit.checkpointer import DEFAULT_INTERVAL as PRODUCT_CHECKPOINT_INTERVAL
from jitgate.audit.note import Signer
from jitgate.cli.jitgate.main import main as cli_main

CONCURRENCY = (1, 16, 64)
MAX_APPENDS = 4000  # per run
BUDGET = 1.0  # seconds per run, after which appenders stop taking new work
ROUNDS = 3  # inline and group runs alternate, so a noisy neighbour hits both alike
WARMUP = 20
TARGET_RATIO = 4.0  # group commit vs inline at 64 appenders on the file sink
TARGET_TLOG_RATE = 20_000  # appends/s with tree and checkpoints, 64 appenders, file sink
CHECKPOINT_INTERVAL = 0.05
SUSTAINED_BUDGET = 3.0  # seconds: several of the product's checkpoints fall inside
SUSTAINED_MAX_APPENDS = 200_000
CHECKPOINT_KEY = Signer.generate("bench.jitgate.example/audit")
VERIFY_RECORDS = 20_000
TARGET_VERIFY_RATE = 20_000  # records/s, either way
HMAC_KEY = b"bench-hmac-key-0123456789abcdef"


def _event(i: int) -> AuditEvent:
    """About the size of a real `action.allowed` record (~1 KB stored)."""
    return AuditEvent(
        type="action.allowed",
        actor=Actor(user=f"user-{i % 50}@example.com", groups=("developers", "sre-oncall")),
        namespace="payments-prod",
        action=Action(
            verb="exec", resource="pods", name=f"api-7d9f8c6b5-{i % 97:05d}", subresource="exec",
            container="app", command=("sh", "-c", "cat /var/log/app/current | tail -n 200"),
            tty=True, stdin=True,
        ),
        request="inc-4711-debug-api",
        grant="inc-4711-debug-api-x7k2q",
        admissionUID=str(uuid.UUID(int=i)),
        dryRun=False,
        context={"policy": "production", "breakGlass": False,
                 "approvalChainDigest": "sha256:" + "ab" * 32},
    )  # fmt: skip


@dataclass(frozen=True)
class Result:
    sink: str
    writers: int
    mode: str
    rates: list[float]
    latencies: list[float]
    cpu: list[float] = field(default_factory=list)  # process CPU seconds per append, by round

    @property
    def rate(self) -> float:
        """The median round: robust to one round disturbed by other work on the machine."""
        return statistics.median(self.rates)

    def percentile(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[q - 1]


async def _run(
    url: str,
    sink: str,
    writers: int,
    mode: str,
    *,
    budget: float = BUDGET,
    max_appends: int = MAX_APPENDS,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
    append_process: bool = False,
) -> Result:
    latencies: list[float] = []
    async with open_audit_writer(
        url,
        writer_id="bench",
        max_batch=1 if mode == "inline" else 1024,
        maintenance_interval=None,
        checkpoint_key=CHECKPOINT_KEY if mode == "tlog" else None,
        checkpoint_interval=checkpoint_interval,
        append_process=append_process,
    ) as writer:
        for i in range(WARMUP):
            await writer.append(_event(i))
        tickets = iter(range(max_appends))
        deadline = time.perf_counter() + budget

        async def appender() -> None:
            for i in tickets:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                await writer.append(_event(i))
                latencies.append(time.perf_counter() - started)

        started, cpu_started = time.perf_counter(), cpu_with_append_processes()
        await asyncio.gather(*(appender() for _ in range(writers)))
        elapsed = time.perf_counter() - started
        cpu = (cpu_with_append_processes() - cpu_started) / max(1, len(latencies))
    return Result(sink, writers, mode, [len(latencies) / elapsed], latencies, [cpu])


def _measure(sink: str, url_for: Callable[[], str], modes: tuple[str, ...]) -> list[Result]:
    results = []
    for writers in CONCURRENCY:
        rounds: dict[str, list[Result]] = {mode: [] for mode in modes}
        for _ in range(ROUNDS):
            for mode in modes:
                rounds[mode].append(asyncio.run(_run(url_for(), sink, writers, mode)))
        for runs in rounds.values():
            results.append(
                Result(
                    sink,
                    writers,
                    runs[0].mode,
                    [rate for run in runs for rate in run.rates],
                    [latency for run in runs for latency in run.latencies],
                )
            )
    return results


@dataclass(frozen=True)
class Sustained:
    rate: float  # appends/s
    cpu: float  # process CPU seconds per append


def _sustained(
    url_for: Callable[[], str],
    run_loop: Callable[[Coroutine[Any, Any, Result]], Result],
    *,
    append_process: bool,
) -> dict[str, Sustained]:
    """Appends/s and CPU per append of 64 appenders over `SUSTAINED_BUDGET` s, with the tree
    and checkpoints at the product's interval and without them, alternating; the median of
    `ROUNDS` each, each run on a new event loop from `run_loop`, the batches synced by an
    append process or on the writer's thread."""
    rates: dict[str, list[Result]] = {"group": [], "tlog": []}
    for _ in range(ROUNDS):
        for mode in rates:
            run = run_loop(
                _run(
                    url_for(),
                    "file",
                    64,
                    mode,
                    budget=SUSTAINED_BUDGET,
                    max_appends=SUSTAINED_MAX_APPENDS,
                    checkpoint_interval=PRODUCT_CHECKPOINT_INTERVAL,
                    append_process=append_process,
                )
            )
            rates[mode].append(run)
    return {
        mode: Sustained(
            statistics.median(run.rate for run in runs),
            statistics.median(run.cpu[0] for run in runs),
        )
        for mode, runs in rates.items()
    }


def _print(results: list[Result]) -> dict[tuple[str, int], float]:
    print(f"{'sink':<11}{'appenders':>9}  {'mode':<7}{'appends/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        print(
            f"{r.sink:<11}{r.writers:>9}  {r.mode:<7}{r.rate:>10.0f}"
            f"{r.percentile(50) * 1000:>9.2f}{r.percentile(99) * 1000:>9.2f}"
        )
    ratios: dict[tuple[str, int], float] = {}
    by_key = {(r.sink, r.writers, r.mode): r for r in results}
    for sink, writers, _ in by_key:
        if (sink, writers) in ratios:
            continue
        group, inline = by_key.get((sink, writers, "group")), by_key.get((sink, writers, "inline"))
        if group and inline:
            ratios[(sink, writers)] = group.rate / inline.rate
    print("\ngroup commit / inline fsync, appends per second:")
    for (sink, writers), ratio in ratios.items():
        print(f"  {sink:<11}{writers:>3} appenders: {ratio:6.1f}x")
    return ratios


def _fsync_cost(directory: str, count: int = 200) -> tuple[float, float]:
    """p50 and p99 of one 1 KB append + fdatasync on this disk: the unit of inline cost."""
    samples = []
    fd = os.open(os.path.join(directory, "fsync-probe"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * 1023 + b"\n")
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


async def _signed_log(url: str, count: int) -> None:
    async with open_audit_writer(
        url,
        writer_id="bench",
        key=HMAC_KEY,
        maintenance_interval=None,
        checkpoint_key=CHECKPOINT_KEY,
        checkpoint_interval=CHECKPOINT_INTERVAL,
    ) as writer:
        for start in range(0, count, 1000):
            await asyncio.gather(*(writer.append(_event(i)) for i in range(start, start + 1000)))


def _verify_rates(directory: str) -> dict[str, float]:
    """Records per second `jitgate audit verify` checks, by what it is given: the HMAC key
    (chain and MACs), and the HMAC key and the public key (also the checkpoint history and
    every record under the latest checkpoint). The better of two runs, imports warm."""
    url = f"file://{directory}/verify"
    asyncio.run(_signed_log(url, VERIFY_RECORDS))
    key_file, vkey_file = os.path.join(directory, "hmac.key"), os.path.join(directory, "pub")
    with open(key_file, "wb") as file:
        file.write(HMAC_KEY)
    with open(vkey_file, "w") as file:
        file.write(CHECKPOINT_KEY.verifier.vkey)
    chain = ["audit", "verify", "--audit", url, "--key-file", key_file]
    rates = {}
    for label, argv in (
        ("--key-file", chain),
        ("--key-file --verifier-key", [*chain, "--verifier-key", vkey_file]),
    ):
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as out:
                code = cli_main(argv)
            best = min(best, time.perf_counter() - started)
            if code != 0:
                raise RuntimeError(
                    f"jitgate audit verify failed on the bench log:\n{out.getvalue()}"
                )
        rates[label] = VERIFY_RECORDS / best
    return rates


def main() -> None:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="jitgate-audit-bench-") as base:
        p50, p99 = _fsync_cost(base)
        print(
            f"this disk: 1 KB append + fdatasync p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
        )
        results += _measure(
            "file", lambda: f"file://{base}/{uuid.uuid4().hex}", ("inline", "group", "tlog")
        )
        # As the webhook writes: on uvloop, its batches synced by an append process; and as
        # the operator does: on the standard library's loop, on the writer's thread.
        sustained = _sustained(
            lambda: f"file://{base}/{uuid.uuid4().hex}", uvloop.run, append_process=True
        )
        sustained_load = os.getloadavg()[0]
        stdlib = _sustained(
            lambda: f"file://{base}/{uuid.uuid4().hex}", asyncio.run, append_process=False
        )
        verify_rates = _verify_rates(base)
    reason = postgres.missing_reason()
    if reason:
        print(f"PostgreSQL sink skipped: {reason}")
    else:
        server = postgres.PostgresServer().start()
        try:
            results += _measure(
                "postgresql",
                lambda: server.url() + f"?table=b_{uuid.uuid4().hex[:12]}",
                ("inline", "group"),
            )
        finally:
            server.stop()
    ratios = _print(results)
    ratio = ratios.get(("file", 64))
    if ratio is not None:
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"\nfile sink, 64 appenders: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x): {verdict}")
    by_mode = {r.mode: r for r in results if (r.sink, r.writers) == ("file", 64)}
    tlog, group = by_mode.get("tlog"), by_mode.get("group")
    if tlog is not None and group is not None:
        print(
            f"file sink, 64 appenders, Merkle tree + a checkpoint every {CHECKPOINT_INTERVAL} s "
            f"(stress): {tlog.rate:.0f} appends/s vs {group.rate:.0f} without them "
            f"({tlog.rate / group.rate:.2f}x)"
        )
    tlog_run, group_run = sustained["tlog"], sustained["group"]
    verdict = "ok" if tlog_run.rate >= TARGET_TLOG_RATE else "BELOW TARGET"
    if sustained_load > (os.cpu_count() or 1) / 2:
        verdict += " (the target is for a quiet machine: see the load below)"
    print(
        f"file sink, 64 appenders for {SUSTAINED_BUDGET:.0f} s, Merkle tree + checkpoints as the "
        f"product signs them (every {PRODUCT_CHECKPOINT_INTERVAL:g} s): {tlog_run.rate:.0f} "
        f"appends/s vs {group_run.rate:.0f} without them "
        f"({tlog_run.rate / group_run.rate:.2f}x; target >= {TARGET_TLOG_RATE}) on uvloop with an "
        f"append process, as the webhook runs its writer: {verdict}\n"
        f"  on the standard library's event loop and the writer's thread, as the operator runs "
        f"it: {stdlib['tlog'].rate:.0f} appends/s vs {stdlib['group'].rate:.0f} without them\n"
        f"  CPU per append {tlog_run.cpu * 1e6:.1f} µs vs {group_run.cpu * 1e6:.1f} µs without "
        f"them; load average {sustained_load:.1f} during these runs, this disk's fdatasync "
        f"p50 {p50 * 1000:.2f} ms"
    )
    for flags, rate in verify_rates.items():
        print(
            f"jitgate audit verify {flags}, {VERIFY_RECORDS} signed records: "
            f"{rate:.0f} records/s (target >= {TARGET_VERIFY_RATE}): "
            + ("ok" if rate >= TARGET_VERIFY_RATE else "BELOW TARGET")
        )


if __name__ == "__main__":
    main()
