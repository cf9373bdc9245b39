"""Operator latency against the emulator: approval to Grant, and Grant expiry lag.

The operator runs in-process on the system clock with a 50 ms poll interval and a real file
audit log (fsync'd records before every action). Approval-to-grant is measured from the
approving status patch to the Grant existing in the API; expiry lag from a grant's
`expiresAt` to it being gone. Both are bounded: 50 approvals, 20 expiries, 180 s overall.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jitgate.operator.config import OperatorConfig
from jitgate.operator.runtime import run

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessRequestSpec
from jitgate.core.clock import SYSTEM_CLOCK, format_time, parse_time
from jitgate.core.grants import grant_name
from jitgate.devtools.emulator import ApiError, KubeEmulator, run_emulator

CRDS = Path(__file__).resolve().parents[2] / "crds"
AR = "jitgate.dev/v1alpha1/accessrequests"
GRANTS = "jitgate.dev/v1alpha1/grants"
APPROVALS = 50
EXPIRIES = 20
POLL = 0.05
OVERALL = 180.0  # a bound for a broken run, not a target: a busy machine is slow


async def _until(condition: Callable[[], Any], step: float = 0.002) -> Any:
    while not (result := condition()):  # noqa: ASYNC110 - the emulator has no change hook
        await asyncio.sleep(step)
    return result


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98]
    return statistics.median(ordered), p99, ordered[-1]


async def _bench() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # A short request log: kmock matches each request against the whole log.
        emulator = KubeEmulator(keep_alive=False, request_log_limit=100)
        async with run_emulator(emulator=emulator, crds=sorted(CRDS.glob("*.yaml"))) as handle:
            api = handle.emulator
            kubeconfig = handle.write_kubeconfig(Path(tmp) / "kubeconfig")
            config = OperatorConfig(
                audit_url=f"file://{tmp}/audit",
                writer_id="bench",
                kubeconfig=kubeconfig,
                standalone=True,
                poll_interval=POLL,
                dynamic_scanning=False,
            )
            api.create_object("v1/namespaces", {"metadata": {"name": "prod"}})
            policy = {
                "namespaces": {"names": ["prod"]},
                "actions": ["exec"],
                "approvers": {"groups": ["sre"]},
                "maxDuration": "1h",
            }
            api.create_object(
                "jitgate.dev/v1alpha1/accesspolicies",
                {"metadata": {"name": "production"}, "spec": policy},
            )
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(run(config, stop_flag=stop, ready_flag=ready))
            await asyncio.wait_for(ready.wait(), 10)
            try:
                async with asyncio.timeout(OVERALL):
                    approval = await _approvals(api, APPROVALS, "30m")
                    lags = await _expiries(api, EXPIRIES)
            finally:
                stop.set()
                await task
    p50, p99, worst = _percentiles(approval)
    print(f"approval -> Grant exists ({APPROVALS} requests, one at a time)")
    print(f"  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   max {worst * 1000:7.1f} ms")
    p50, p99, worst = _percentiles(lags)
    print(f"expiresAt -> Grant gone ({EXPIRIES} grants, expiring 250 ms apart, poll {POLL}s)")
    print(f"  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   max {worst * 1000:7.1f} ms")


def _request(api: Any, name: str, duration: str) -> None:
    spec = {
        "actions": [{"verb": "exec", "names": ["web-0"]}],
        "reason": "bench",
        "duration": duration,
        "requester": {"user": "alice", "groups": ["dev"]},
    }
    api.create_object(AR, {"metadata": {"name": name}, "spec": spec}, "prod")


def _phase(api: Any, name: str) -> str | None:
    return api.read_object(AR, "prod", name).get("status", {}).get("phase")


def _approve(api: Any, name: str) -> None:
    spec = AccessRequestSpec.model_validate(api.read_object(AR, "prod", name)["spec"])
    entry = {
        "user": "bob",
        "groups": ["sre"],
        "decision": "Approve",
        "time": format_time(SYSTEM_CLOCK.now()),
        "specDigest": spec_digest(spec),
    }
    patch = [{"op": "add", "path": "/status/approvals/-", "value": entry}]
    api.patch_object(AR, "prod", name, patch, patch_type="json", subresource="status")


def _phase_is(api: Any, name: str, phase: str) -> bool:
    return _phase(api, name) == phase


def _grant_of(api: Any, name: str) -> dict[str, Any] | None:
    uid = api.read_object(AR, "prod", name)["metadata"]["uid"]
    try:
        return dict(api.read_object(GRANTS, "prod", grant_name(name, uid)))
    except ApiError:
        return None


async def _approvals(api: Any, count: int, duration: str) -> list[float]:
    samples = []
    for i in range(count):
        name = f"req-{i}"
        _request(api, name, duration)
        await _until(functools.partial(_phase_is, api, name, "Pending"))
        started = time.perf_counter()
        _approve(api, name)
        await _until(functools.partial(_grant_of, api, name))
        samples.append(time.perf_counter() - started)
    return samples


async def _expiries(api: Any, count: int) -> list[float]:
    # Staggered 250 ms apart: the lag of each expiry, not the throughput of a burst.
    names = [f"short-{i}" for i in range(count)]
    for i, name in enumerate(names):
        _request(api, name, f"{2 + i * 0.25}s")
    await _until(lambda: all(_phase(api, name) == "Pending" for name in names))
    for name in names:
        _approve(api, name)

    def all_granted() -> list[dict[str, Any]] | None:
        found = [_grant_of(api, name) for name in names]
        return [grant for grant in found if grant] if all(found) else None

    grants = await _until(all_granted)
    lags: dict[str, float] = {}
    pending = {g["metadata"]["name"]: parse_time(g["spec"]["expiresAt"]) for g in grants}

    def gone() -> bool:
        for name, expires_at in list(pending.items()):
            try:
                api.read_object(GRANTS, "prod", name)
            except ApiError:
                lags[name] = (dt.datetime.now(dt.UTC) - expires_at).total_seconds()
                del pending[name]
        return not pending

    await _until(gone)
    return list(lags.values())


def main() -> None:
    asyncio.run(_bench())


if __name__ == "__main__":
    main()
