"""The admission webhook under load, against a minimal FastAPI endpoint in the same run.

1. Throughput and latency at 16 concurrent keep-alive connections over TLS for
   - an allowed exec (decision + durable audit record, group commit, fdatasync in the audit
     writer's append process, as `jitgate webhook` writes them),
   - a denied exec (decision + audit record),
   - the baseline: a minimal FastAPI endpoint answering the same AdmissionReview with
     `allowed: true` (parse the JSON, echo the uid),
   all served the way FastAPI is served in production, uvicorn[standard] (uvloop, httptools,
   TLS, no access log), in the same process, one scenario at a time.
2. Decision latency (parse the review, decode the action, decide from the cache) with 10 vs
   100,000 live grants in the index.
3. Memory the cache holds for 100,000 live grants (traced allocations that stay).
4. Overload: allowed execs offered at three times the allowed exec's throughput in (1), on a
   fixed schedule for a few seconds over up to 1,000 connections, each with the chart's
   webhook timeout as its deadline, against the webhook with the slots and queue wait
   `jitgate webhook` has: what was answered (allowed, denied and why), 5xx, timed out,
   connection errors, latency, and the serving process's memory (RSS before, peak, after).
   Targets: no 5xx, no answer later than the timeout, memory growing with the connections
   (at most 64 KiB each), never with the reviews offered.

The load comes from a separate process (2 cores here: one serves, one loads):
tests/bench/loadgen, a small Go program calling the webhook as the kube-apiserver does (Go
over TLS, HTTP/1.1 keep-alive, one request in flight per connection). It sends prebuilt
requests and reads answers by Content-Length, so it costs far less CPU per request than the
server (printed next to the server's) and cannot be what limits the figures. It is built by
tests/apiserver/build.py into tests/bench/bin; without Go the throughput figures are skipped,
saying why.

Targets (issue 18): allowed exec >= 0.7x the baseline's throughput with p99 <= 10 ms;
decision latency at 100,000 grants within 10% of 10 grants. On a machine shared with other
work the figures are noisy: the load average is printed first, and the ratios (measured in
alternating rounds of the same run) are what to compare, above all the server CPU time per
request: throughput and latency follow whatever else holds the cores, CPU per request far less
(0.7x the baseline's throughput means at most 1/0.7 = 1.43x its CPU per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import socket
import ssl
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
import yaml
from apiserver import build
from bench.quantiles import nearest_rank
from fastapi import FastAPI, Request
from fastapi.responses import Response
from jitgate.webhook.app import create_app
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.config import WebhookConfig
from jitgate.webhook.decode import decode
from jitgate.webhook.review import parse_review
from jitgate.webhook.server import hand_over_promptly, http_options, settle_heap
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.tls import ReloadingTLS
from support import objects, reviews
from support.clocks import NOW
from support.processes import cpu_with_append_processes

from jitgate.audit.connect import open_audit_writer
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.protected import decide
from jitgate.core.clock import ManualClock
from jitgate.core.policy import Exemptions
from jitgate.devtools.devcerts import DevCA

CONCURRENCY = 16
WARMUP = 0.5  # seconds of load before measuring
DURATION = 1.5  # seconds measured per scenario and round
ROUNDS = 2
DECISIONS = 20_000  # timed decisions per index size

TARGET_THROUGHPUT = 0.7
TARGET_P99 = 0.010
MEMORY_GRANTS = 100_000
TARGET_DECISION_RATIO = 1.10

OVERLOAD = 3  # times the allowed exec's throughput (closed loop, 16 connections)
OVERLOAD_SECONDS = 3.0
# More than the API server ever has in flight by default (--max-requests-inflight 400 and
# --max-mutating-requests-inflight 200): each of its requests calls the webhook once at most.
# Of these, loadgen keeps 25 open while idle, as client-go's transport does.
OVERLOAD_CONNECTIONS = 1000
# Most the webhook may grow by per connection open at once (TLS buffers, one review): what it
# holds grows with its connections, never with the reviews offered.
OVERLOAD_MEMORY_PER_CONNECTION = 64 * 2**10
CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "jitgate" / "values.yaml"


# ------------------------------------------------------------------ fixtures


def _pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and serving certificate for 127.0.0.1: (ca, cert, key) files."""
    authority = DevCA(directory, "bench CA")
    cert_file, key_file = authority.issue("tls")
    return authority.cert_file, cert_file, key_file


def _grant(i: int) -> dict[str, Any]:
    return objects.grant(
        f"grant-{i}",
        f"ns-{i % 500}",
        user=f"user-{i}",
        actions=[
            {"verb": "exec", "names": [f"pod-{i}"], "container": "app", "command": ["ls", "-l"]}
        ],
        not_before=NOW - dt.timedelta(minutes=1),
        expires_at=NOW + dt.timedelta(hours=1),
        request=f"req-{i}",
        request_uid=str(uuid.UUID(int=i + 1)),
        approvals=[objects.approval()],
        metadata={"uid": str(uuid.UUID(int=i))},
    )


def _cache(grants: int) -> ClusterCache:
    cache = ClusterCache()
    namespaces = [
        {"metadata": {"name": f"ns-{n}", "labels": {"jitgate.dev/protected": "true"}}}
        for n in range(500)
    ]
    cache.replace("namespaces", namespaces)
    cache.replace("accesspolicies", [objects.policy(namespaces=objects.BY_PROTECTED_LABEL)])
    cache.replace("accessrequests", [])
    cache.replace("grants", [_grant(i) for i in range(grants)])
    return cache


# Every request carries a uid of its own, as the API server's do: the webhook answers a review
# it has already decided (same uid) from its memo, which would flatter its figures.
UID_SLOT = "00000000-0000-0000-0000-000000000000"


def _exec_review(user_index: int, command: list[str]) -> dict[str, Any]:
    """A pods/exec AdmissionReview as the API server sends it (~1 KB with the extra
    fields a certificate-authenticated user carries); the load fills in its uid."""
    body = reviews.exec_review(
        f"pod-{user_index}",
        namespace=f"ns-{user_index % 500}",
        command=command,
        user=f"user-{user_index}",
        groups=["developers", "payments-team"],
    )
    body["request"]["uid"] = UID_SLOT
    body["request"]["userInfo"]["extra"] = {
        "authentication.kubernetes.io/credential-id": ["X509SHA256=9a0b3f1c5d7e2a4b6c8d0e1f"],
        "authentication.kubernetes.io/node-name": ["kind-control-plane"],
    }
    return body


# ------------------------------------------------------------------ the load generator

BENCH_DIR = Path(__file__).resolve().parent
# tests/bench/loadgen: Go over TLS, as the API server calls a webhook, at a few µs of CPU per
# request (a Python client costs ~100 µs: on 2 cores it takes the server's second core from
# its audit thread). Built the way the tier's binaries are, into tests/bench/bin.
LOADGEN = build.Target(
    "loadgen", ".", "webhook bench's load generator", module="loadgen", kubernetes_stamp=False
)


def _loadgen() -> Path | str:
    """The load generator's binary, built if stale, or why it cannot be built here."""
    try:
        return build.build(LOADGEN, BENCH_DIR, BENCH_DIR / "bin", echo=print).binary
    except build.BuildUnavailable as error:
        return str(error)


async def _run_loadgen(binary: Path, port: int, *flags: str) -> dict[str, Any]:
    """What `loadgen` reports (tests/bench/loadgen/main.go) for a run against `port`."""
    process = await asyncio.create_subprocess_exec(
        binary, f"-addr=127.0.0.1:{port}", *flags, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(flags)} exited {process.returncode}")
    report: dict[str, Any] = json.loads(out)
    return report


# ------------------------------------------------------------------ servers


def _baseline_app() -> FastAPI:
    """The least a FastAPI admission endpoint can do: parse the review and allow it."""
    app = FastAPI()

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        review = json.loads(await request.body())
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
        return Response(json.dumps(answer), media_type="application/json")

    return app


@contextlib.asynccontextmanager
async def _serving(
    app: Any, context: ssl.SSLContext, options: dict[str, Any] | None = None
) -> AsyncIterator[int]:
    """Serve `app` on uvicorn[standard] as it comes (`http="httptools"`), or with `options`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        ssl_context_factory=lambda _c, _d: context,
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=60,
        **(options or {"http": "httptools"}),
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # bounded start-up wait
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _measure(
    loadgen: Path, port: int, ca_file: Path, body_file: Path
) -> tuple[list[int], int, float, float]:
    """Latencies (µs) of the requests answered in DURATION seconds of closed-loop load at
    CONCURRENCY connections (after WARMUP), how many were answered in all (warm-up included),
    and the CPU seconds the webhook (this process and its audit append process) and the load
    generator spent meanwhile."""
    cpu = cpu_with_append_processes()
    # The servers run in this loop: the load generator is awaited without blocking it.
    report = await _run_loadgen(
        loadgen, port, f"-ca={ca_file}", f"-body={body_file}", f"-conns={CONCURRENCY}",
        f"-warmup={WARMUP}s", f"-duration={DURATION}s", "-latencies",
    )  # fmt: skip
    cpu = cpu_with_append_processes() - cpu
    wrong = report["answered"] - report["allowed"] - report["denied"]
    if wrong or report["timed_out"] or report["connection_errors"]:
        raise RuntimeError(f"not every request was answered with an AdmissionReview: {report}")
    return report["latencies_us"], report["answered"], cpu, report["cpu_seconds"]


def _figures(
    samples: list[int], seconds: float, answered: int, cpu: float, client: float, records: int
) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "rps": len(samples) / seconds,
        "p50": nearest_rank(samples, 0.5) / 1e6,
        "p99": nearest_rank(samples, 0.99) / 1e6,
        "cpu": cpu / answered,
        "client": client / answered,
        "records": records / answered,
    }


BASELINE = "baseline (minimal FastAPI, uvicorn[standard])"
ALLOWED = "allowed exec (durable audit)"
DENIED = "denied exec (audited)"


async def _under_load(
    directory: Path, loadgen: Path
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The throughput figures of each scenario, then what the webhook does at OVERLOAD times
    the allowed exec's throughput (`_overload`)."""
    ca_file, cert, key = _pki(directory)
    clock = ManualClock(NOW)
    allowed = directory / "allowed.json"
    allowed.write_text(json.dumps(_exec_review(7, ["ls", "-l"])))
    # Each denial a user request of its own, recorded: its command carries the uid too. The
    # same refusal again within 2 s is taken for kubectl's SPDY retry of one request and not
    # recorded again (`jitgate.webhook.memo`), which would flatter the figures.
    denied = directory / "denied.json"
    denied.write_text(json.dumps(_exec_review(7, ["rm", "-rf", UID_SLOT])))
    baseline_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    baseline_tls.load_cert_chain(cert, key)
    samples: dict[str, list[int]] = {BASELINE: [], ALLOWED: [], DENIED: []}
    cpu = dict.fromkeys(samples, 0.0)
    client = dict.fromkeys(samples, 0.0)
    answered = dict.fromkeys(samples, 0)
    records = dict.fromkeys(samples, 0)
    cache = _cache(1000)
    settle_heap(cache)  # as `jitgate webhook` does once the cache is synced
    hand_over_promptly()  # as `jitgate webhook` does at its start
    async with (
        # As `jitgate webhook` opens it: its batches synced by a process of their own.
        open_audit_writer(
            f"file://{directory}/audit", writer_id="bench", clock=clock, append_process=True
        ) as audit,
        _serving(_baseline_app(), baseline_tls) as baseline_port,
        _serving(
            # Slots and their queue as `jitgate webhook` has them: the chart leaves the
            # defaults.
            create_app(
                AdmissionService(cache=cache, audit=audit, clock=clock),
                max_in_flight=WebhookConfig.max_in_flight,
                queue_wait=WebhookConfig.queue_wait,
            ),
            ReloadingTLS(cert, key, session_tickets=False).context,
            http_options(client_ca=False),  # as `jitgate webhook` serves
        ) as webhook_port,
    ):
        # Rounds alternate the scenarios, so a busy neighbour on a shared machine weighs on
        # all of them alike and the ratios stay fair.
        for _ in range(ROUNDS):
            for name, port, body in (
                (BASELINE, baseline_port, allowed),
                (ALLOWED, webhook_port, allowed),
                (DENIED, webhook_port, denied),
            ):
                before = audit.head.seq if audit.head else 0
                measured, count, seconds, load = await _measure(loadgen, port, ca_file, body)
                samples[name] += measured
                answered[name] += count
                cpu[name] += seconds
                client[name] += load
                records[name] += (audit.head.seq if audit.head else 0) - before
        figures = {
            name: _figures(
                values, ROUNDS * DURATION, answered[name], cpu[name], client[name], records[name]
            )
            for name, values in samples.items()
        }
        rate = OVERLOAD * figures[ALLOWED]["rps"]
        overload = await _overload(loadgen, webhook_port, ca_file, allowed, rate)
    return figures, overload


# ------------------------------------------------------------------ overload


def _webhook_timeout() -> int:
    """The webhook timeout the chart configures (`webhook.timeoutSeconds`), in seconds."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    return int(values["webhook"]["timeoutSeconds"])


def _memory(field: str) -> int:
    """This process's `field` of /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise LookupError(field)


def _reset_peak_memory() -> None:
    """Set this process's peak RSS (VmHWM) to its current RSS (proc(5): clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


async def _overload(
    loadgen: Path, port: int, ca_file: Path, body_file: Path, rate: float
) -> dict[str, Any]:
    """What `loadgen` counts offering `rate` allowed execs a second for OVERLOAD_SECONDS, on
    up to OVERLOAD_CONNECTIONS connections, each review with the chart's webhook timeout as
    its deadline (and on the URL, as the API server sends it), with this (the serving)
    process's memory: RSS before and after, and its peak meanwhile."""
    timeout = _webhook_timeout()
    before = _memory("VmRSS")
    _reset_peak_memory()
    report = await _run_loadgen(
        loadgen, port, f"-ca={ca_file}", f"-body={body_file}", "-mode=open",
        f"-rate={rate:.0f}", f"-duration={OVERLOAD_SECONDS}s", f"-timeout={timeout}s",
        f"-max-conns={OVERLOAD_CONNECTIONS}", f"-path=/validate?timeout={timeout}s",
    )  # fmt: skip
    report["memory"] = {"before": before, "peak": _memory("VmHWM"), "after": _memory("VmRSS")}
    report["timeout"] = timeout
    return report


# ------------------------------------------------------------------ decision latency


def _decision_latency(grants: int) -> tuple[float, float]:
    cache = _cache(grants)
    target = grants // 2
    body = json.dumps(_exec_review(target, ["ls", "-l"])).encode()
    exemptions = Exemptions()
    samples = []
    gc.collect()
    for _ in range(DECISIONS):
        started = time.perf_counter_ns()
        request = parse_review(body)
        attempted = decode(request)
        assert isinstance(attempted, AttemptedAction)
        verdict = decide(
            attempted, request.user, request.groups, cache=cache, exemptions=exemptions, now=NOW
        )
        samples.append(time.perf_counter_ns() - started)
        assert verdict is not None and verdict.allowed
    samples.sort()
    return nearest_rank(samples, 0.5) / 1e3, nearest_rank(samples, 0.99) / 1e3


def _cache_memory(grants: int) -> float:
    """Bytes the cache keeps for `grants` live grants (index, specs, approval digests)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = _cache(grants)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache.grants) == grants
    return float(kept)


def _print_throughput(results: dict[str, dict[str, float]]) -> None:
    base = results[BASELINE]
    print(
        f"{'scenario':<44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12} "
        f"{'server CPU/req':>15} {'client CPU/req':>15} {'records/req':>12}"
    )
    for name, figures in results.items():
        ratio = figures["rps"] / base["rps"]
        print(
            f"{name:<44} {figures['rps']:>8.0f} {figures['p50'] * 1e3:>8.2f} "
            f"{figures['p99'] * 1e3:>8.2f} {ratio:>11.2f}x {figures['cpu'] * 1e6:>12.0f} µs "
            f"{figures['client'] * 1e6:>12.0f} µs {figures['records']:>12.2f}"
        )
    allowed = results[ALLOWED]
    print(
        f"allowed exec: {allowed['rps'] / base['rps']:.2f}x the baseline's throughput "
        f"(target >= {TARGET_THROUGHPUT}), p50 {allowed['p50'] / base['p50']:.2f}x and p99 "
        f"{allowed['p99'] / base['p99']:.2f}x its latency; p99 {allowed['p99'] * 1e3:.2f} ms "
        f"(target <= {TARGET_P99 * 1e3:.0f} ms); server CPU per request "
        f"{allowed['cpu'] / base['cpu']:.2f}x the baseline's (the figure a loaded machine "
        f"distorts least: target <= {1 / TARGET_THROUGHPUT:.2f}x)"
    )


def _print_overload(report: dict[str, Any]) -> None:
    offered = report["sent"] + report["not_sent"]
    seconds, timeout = report["seconds"], report["timeout"]
    print(
        f"\noverload: {OVERLOAD}x the allowed exec's throughput, {offered / seconds:,.0f} req/s "
        f"offered for {seconds:.0f} s on up to {OVERLOAD_CONNECTIONS:,} connections, each "
        f"review's deadline the chart's webhook timeout ({timeout} s)"
    )
    statuses = report["statuses"]
    errors = sum(count for status, count in statuses.items() if status.startswith("5"))
    others = sum(statuses.values()) - errors
    print(
        f"  sent {report['sent']:,} ({report['not_sent']:,} not: every connection busy) on "
        f"{report['connections_opened']:,} connections; answered {report['answered']:,} in "
        f"{report['elapsed']:.1f} s ({report['answered'] / report['elapsed']:,.0f}/s): "
        f"allowed {report['allowed']:,}, denied {report['denied']:,}, 5xx {errors}, "
        f"other statuses {others}, not AdmissionReviews {report['malformed']}; timed out "
        f"{report['timed_out']:,}, connection errors {report['connection_errors']:,}"
    )
    for reason, denial in sorted(report["denials"].items()):
        print(f"  denied {denial['count']:,} as {reason}: {denial['message']!r}")
    print("  latency of the answers, from each review's scheduled time:")
    for name, figures in (
        ("all", report),
        ("on a kept connection", report["on_kept_connections"]),
        ("on a connection opened for it (TLS handshake)", report["on_new_connections"]),
    ):
        print(
            f"    {name:<46} {figures['count']:>6,}: p50 {figures['p50_ms']:>7.1f} ms, "
            f"p99 {figures['p99_ms']:>7.1f} ms, max {figures['max_ms']:>7.1f} ms"
        )
    memory = {name: value / 2**20 for name, value in report["memory"].items()}
    grown = memory["peak"] - memory["before"]
    print(
        f"  webhook process RSS: {memory['before']:.0f} MiB before, peak {memory['peak']:.0f} "
        f"MiB (+{grown:.0f}), {memory['after']:.0f} MiB after"
    )
    within = report["max_ms"] <= timeout * 1e3 and not report["timed_out"]
    bound = OVERLOAD_CONNECTIONS * OVERLOAD_MEMORY_PER_CONNECTION / 2**20
    print(
        f"  targets: no 5xx: {'met' if not errors else 'NOT met'}; every answer within the "
        f"timeout: {'met' if within else 'NOT met'}; memory bounded (peak at most "
        f"+{OVERLOAD_MEMORY_PER_CONNECTION / 2**10:.0f} KiB per connection, +{bound:.0f} MiB): "
        f"{'met' if grown <= bound else 'NOT met'}"
    )


def main() -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{os.cpu_count()} CPUs, load average {load}; {CONCURRENCY} TLS connections from "
        "tests/bench/loadgen (Go), another process"
    )
    loadgen = _loadgen()
    if isinstance(loadgen, str):
        print(f"throughput and overload figures skipped: no load generator ({loadgen})")
    else:
        with tempfile.TemporaryDirectory(prefix="jitgate-bench-") as tmp:
            throughput, overload = uvloop.run(_under_load(Path(tmp), loadgen))
        _print_throughput(throughput)
        _print_overload(overload)
    print(f"\n{'live grants':>12} {'p50 µs':>8} {'p99 µs':>8}   (parse + decode + decide, no I/O)")
    latency = {}
    for grants in (10, 100_000):
        latency[grants] = _decision_latency(grants)
        print(f"{grants:>12} {latency[grants][0]:>8.1f} {latency[grants][1]:>8.1f}")
    ratio = latency[100_000][0] / latency[10][0]
    print(f"p50 ratio 100k/10 grants: {ratio:.2f} (target <= {TARGET_DECISION_RATIO})")
    kept = _cache_memory(MEMORY_GRANTS)
    print(
        f"memory at {MEMORY_GRANTS:,} live grants: {kept / 2**20:.0f} MiB "
        f"({kept / MEMORY_GRANTS / 1024:.1f} KiB per grant)"
    )


if __name__ == "__main__":
    main()
