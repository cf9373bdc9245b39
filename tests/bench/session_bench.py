"""What the session gateway costs a user: keystroke round trips and streaming throughput of
`kubectl jit exec` (through the aggregation layer, the gateway and its recording) against a
direct `kubectl exec` of the same pod with the same grant, on the real API server with kwok as
the node's kubelet (the e2e tier's installation, ``e2e.cluster``).

1. Keystroke round trip: one line written to `cat` on the pod's stdin until it comes back on
   stdout, `KEYSTROKES` times per side; p50 and p99 of each side and what the gateway adds.
2. Throughput: `head -c STREAM_BYTES /dev/zero` on the pod read to its end, `STREAMS` times
   per side (alternating); MB/s of each side from the first byte to the end and the gateway's
   as a ratio of direct, and the time to the first byte apart (through the gateway it holds
   the plugin's start and the session's opening, not the streaming). Every byte through the
   gateway is also recorded (chunks in the webhook's audit chain); a run that exits non-zero
   fails the bench, one that arrives short is printed.

Everything shares the machine's cores with the API server, kwok and jitgate. Prints only;
bounded by ``TIME_BOUND_S`` and by each read's deadline.
"""

from __future__ import annotations

import contextlib
import os
import select
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from apiserver import build, harness
from bench.quantiles import nearest_rank
from e2e import cluster, manifests

NAMESPACE = "prod"
POD = "bench-0"
KEYSTROKES = 200
STREAM_BYTES = 8 * 1024 * 1024
STREAMS = 3
READ_TIMEOUT_S = 60.0
TIME_BOUND_S = 600.0


def _argv(
    c: cluster.JitCluster, through_gateway: bool, *command: str, stdin: bool = True
) -> list[str]:
    kubectl = [c.api.kubectl_path]
    if through_gateway:
        kubectl.append("jit")
    return [*kubectl, "--kubeconfig", str(c.api.kubeconfig("alice")), "exec",
            *(["-i"] if stdin else []), "-n", NAMESPACE, POD, "--", *command]  # fmt: skip


def _round_trips(c: cluster.JitCluster, through_gateway: bool) -> list[float]:
    """Seconds from a line written to `cat` until it is read back, KEYSTROKES times."""
    process = subprocess.Popen(
        _argv(c, through_gateway, "cat"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=c.env(), start_new_session=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    fd = process.stdout.fileno()
    times: list[float] = []
    try:
        for index in range(KEYSTROKES + 5):  # the first five warm the session up
            line = f"k{index}\n".encode()
            started = time.perf_counter()
            process.stdin.write(line)
            process.stdin.flush()
            got = b""
            while not got.endswith(b"\n"):
                ready, _, _ = select.select([fd], [], [], READ_TIMEOUT_S)
                if not ready:
                    raise TimeoutError(f"no echo of {line!r} within {READ_TIMEOUT_S:.0f} s")
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise EOFError(f"kubectl exited with {process.wait()}")
                got += chunk
            if index >= 5:
                times.append(time.perf_counter() - started)
    finally:
        process.stdin.close()
        process.terminate()  # kwok's exec does not pass the end of stdin on to cat
        process.wait(30)
    return times


@dataclass(frozen=True)
class Streamed:
    """One read of the pod's STREAM_BYTES: seconds to the first byte (kubectl's start, the
    connection and, through the gateway, the plugin and the session's opening) and from the
    first byte to the end of the output (the streaming), and how many bytes arrived."""

    first_byte: float
    streaming: float
    received: int


def _stream(c: cluster.JitCluster, through_gateway: bool) -> Streamed:
    command = ("head", "-c", str(STREAM_BYTES), "/dev/zero")
    started = time.perf_counter()
    process = subprocess.Popen(
        _argv(c, through_gateway, *command, stdin=False), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env(), start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    fd = process.stdout.fileno()
    received, first = 0, 0.0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], READ_TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"no output for {READ_TIMEOUT_S:.0f} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            if not received:
                first = time.perf_counter()
            received += len(chunk)
        ended = time.perf_counter()
        code = process.wait(READ_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        side = "through the gateway" if through_gateway else "direct"
        raise RuntimeError(f"{side}: exit {code}: "
                           f"{process.stderr.read().decode(errors='replace')[-300:]}")  # fmt: skip
    process.stderr.close()
    process.stdout.close()
    return Streamed(first - started, ended - first, received)


@contextlib.contextmanager
def _jitgate(tmp: Path) -> Iterator[cluster.JitCluster]:
    binary = build.ensure_binary(build.KUBE_APISERVER).binary
    kwok_binary = build.ensure_binary(build.KWOK).binary
    with (
        harness.start_kube_apiserver(
            binary, tmp / "kube-apiserver", webhook_client_auth=True, front_proxy=True
        ) as api,
        harness.start_kwok(kwok_binary, api, tmp / "kwok", node=manifests.KWOK_NODE) as kwok,
        cluster.install(
            api, tmp / "jitgate", kwok=kwok, echo=lambda message: print(f"  ({message})")
        ) as c,
    ):
        yield c


def main() -> None:
    deadline = time.monotonic() + TIME_BOUND_S
    with tempfile.TemporaryDirectory(prefix="jitgate-bench-") as tmp, _jitgate(Path(tmp)) as c:
        c.run_pods(NAMESPACE, POD)
        asked = c.jit("alice", "request", "exec", POD, "-n", NAMESPACE, "--for", "30m",
                      "--name", "bench", "--reason", "make bench: session gateway")  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        c.approved("bench", NAMESPACE)
        print("(everything shares this machine's cores: the API server, kwok, the webhook "
              "with its gateway, the operator and kubectl)")  # fmt: skip
        rtt = {side: _round_trips(c, side) for side in (False, True)}
        direct, gateway = (
            (statistics.median(rtt[side]) * 1000, nearest_rank(sorted(rtt[side]), 0.99) * 1000)
            for side in (False, True)
        )
        print(f"keystroke round trip, {KEYSTROKES} lines to cat: direct p50 {direct[0]:.2f} ms "
              f"p99 {direct[1]:.2f} ms; through the gateway p50 {gateway[0]:.2f} ms p99 "
              f"{gateway[1]:.2f} ms (adds {gateway[0] - direct[0]:.2f} ms at p50)")  # fmt: skip
        streamed: dict[bool, list[Streamed]] = {False: [], True: []}
        for _ in range(STREAMS):
            for side in (False, True):
                if time.monotonic() > deadline:
                    print("(time bound spent: throughput skipped)")
                    return
                streamed[side].append(_stream(c, side))
        rate = {
            side: STREAM_BYTES / statistics.median(s.streaming for s in runs) / 1e6
            for side, runs in streamed.items()
        }
        start = {
            side: statistics.median(s.first_byte for s in runs) for side, runs in streamed.items()
        }
        print(f"streaming {STREAM_BYTES // (1024 * 1024)} MiB (median of {STREAMS}, from the first "
              f"byte to the end): direct {rate[False]:.1f} MB/s, through the gateway "
              f"{rate[True]:.1f} MB/s, recorded (ratio {rate[True] / rate[False]:.2f} of direct); "
              f"first byte after {start[False]:.2f} s direct, {start[True]:.2f} s through the "
              f"gateway (kubectl jit's start and the session's opening)")  # fmt: skip
        for side, name in ((False, "direct"), (True, "through the gateway")):
            short = [STREAM_BYTES - s.received for s in streamed[side]]
            if any(short):
                print(f"  bytes missing at the end of the output, {name}: {short}")
        c.check_alive()


if __name__ == "__main__":
    main()
