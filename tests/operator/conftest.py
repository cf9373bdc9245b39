"""The operator, run in-process against the emulator with a manual clock and a real file audit log.

`jit` is the harness: it seeds policies and requests the way the webhook would leave them
(requester and approvals stamped), starts and stops the operator, waits for outcomes and
reads the verified audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jitgate.operator.config import OperatorConfig
from jitgate.operator.runtime import run
from support import objects

from jitgate.audit.connect import open_log_reader
from jitgate.audit.verify import Entry, verify_chain
from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessRequestSpec
from jitgate.core.clock import ManualClock
from jitgate.devtools.emulator import ApiError, EmulatorHandle

AR = "jitgate.dev/v1alpha1/accessrequests"
GRANTS = "jitgate.dev/v1alpha1/grants"
POLICIES = "jitgate.dev/v1alpha1/accesspolicies"
NS = "prod"
WAIT = 10.0  # seconds any single outcome may take before a test fails


class Harness:
    def __init__(self, emulator: EmulatorHandle, kubeconfig: Path, tmp_path: Path) -> None:
        self.handle = emulator
        self.api = emulator.emulator
        self.kubeconfig = kubeconfig
        self.audit_dir = tmp_path / "audit"
        self.audit_url = f"file://{self.audit_dir}"
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.clock = ManualClock(now)
        self.config = OperatorConfig(
            audit_url=self.audit_url,
            writer_id="operator-0",
            kubeconfig=kubeconfig,
            standalone=True,
            poll_interval=0.05,
            dynamic_scanning=False,
        )
        namespace = {"metadata": {"name": NS, "labels": {"tier": "prod"}}}
        self.api.create_object("v1/namespaces", namespace)

    # ------------------------------------------------------------------ seeding

    def policy(self, name: str = "production", **spec: Any) -> dict[str, Any]:
        return self.api.create_object(POLICIES, objects.policy(name, **spec))

    def request(
        self,
        name: str,
        *,
        user: str | None = "alice",
        groups: tuple[str, ...] = ("developers",),
        namespace: str = NS,
        **spec: Any,
    ) -> dict[str, Any]:
        """A request as the webhook leaves it: `requester` stamped (unless `user=None`)."""
        if user is not None:
            spec = {"requester": objects.requester(user, groups), **spec}
        return self.api.create_object(
            AR, objects.access_request(name, namespace, **spec), namespace
        )

    def stamped(
        self,
        name: str,
        user: str,
        decision: str = "Approve",
        *,
        groups: tuple[str, ...] = ("sre",),
        comment: str = "ok",
        digest: str | None = None,
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """An approval entry as the webhook leaves it: user, groups, time, specDigest."""
        spec = AccessRequestSpec.model_validate(self.get(name)["spec"])
        at = at or self.clock.now()
        digest = digest or spec_digest(spec)
        return objects.approval(
            user, decision, groups=groups, comment=comment, at=at, digest=digest
        )

    def approve(self, name: str, user: str, decision: str = "Approve", **kwargs: Any) -> None:
        entry = self.stamped(name, user, decision, **kwargs)
        patch = [{"op": "add", "path": "/status/approvals/-", "value": entry}]
        self.api.patch_object(AR, NS, name, patch, patch_type="json", subresource="status")

    def delete(self, name: str, resource: str = AR) -> None:
        self.api.delete_object(resource, NS, name)

    def grants(self) -> list[dict[str, Any]]:
        return list(self.api.list_objects(GRANTS, NS)["items"])

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.api.patch_object(AR, NS, name, {"metadata": {"annotations": annotations}})

    # ------------------------------------------------------------------ reading

    def get(self, name: str, resource: str = AR) -> dict[str, Any]:
        return self.api.read_object(resource, NS, name)

    def find(self, name: str, resource: str = AR) -> dict[str, Any] | None:
        try:
            return self.api.read_object(resource, NS, name)
        except ApiError:
            return None

    def phase(self, name: str) -> str | None:
        found = self.find(name)
        return (found or {}).get("status", {}).get("phase")

    def grant_of(self, name: str) -> dict[str, Any]:
        ref = self.get(name)["status"]["grant"]
        return self.get(ref["name"], GRANTS)

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.api.list_objects("v1/events", NS)["items"]
        return [
            (event["reason"], event.get("message", ""))
            for event in items
            if event.get("involvedObject", {}).get("name") == name
        ]

    async def until(self, condition: Callable[[], Any], within: float = WAIT) -> Any:
        """Wait (bounded) for an outcome of the operator's API writes: the condition is
        re-checked after every write the emulator serves."""
        return await self.api.wait_for(condition, within)

    async def settle(self) -> None:
        """Let several scheduler ticks pass: only for checking that something did NOT happen,
        where there is no event to wait for."""
        await asyncio.sleep(self.config.poll_interval * 8)

    async def until_phase(self, name: str, phase: str) -> dict[str, Any]:
        await self.until(lambda: self.phase(name) == phase)
        return self.get(name)

    def records(self, writer: str | None = None) -> list[dict[str, Any]]:
        """An operator's audit records in chain order, after verifying its chain."""
        writer = writer or self.config.writer
        reader = open_log_reader(self.audit_url)
        try:
            if writer not in reader.writers():
                return []
            items = list(reader.chain(writer))
        finally:
            reader.close()
        report = verify_chain(writer, items)
        assert report.ok, report.problem
        return [
            dict(item.record)
            for item in items
            if isinstance(item, Entry)
            and item.record is not None
            and not str(item.record.get("type", "")).startswith("audit.")
        ]

    def types(self, request: str | None = None) -> list[str]:
        return [
            record["type"]
            for record in self.records()
            if request is None or record.get("request") == request
        ]

    # ------------------------------------------------------------------ running

    @contextlib.asynccontextmanager
    async def running(self, **overrides: Any) -> AsyncIterator[asyncio.Task[None]]:
        config = dataclasses.replace(self.config, **overrides)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run(config, clock=self.clock, stop_flag=stop, ready_flag=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            await task  # it failed at start-up: raise why
        assert ready.is_set(), "the operator did not become ready"
        try:
            yield task
        finally:
            stop.set()
            async with asyncio.timeout(WAIT):
                await task

    @contextlib.asynccontextmanager
    async def running_in_thread(self, **overrides: Any) -> AsyncIterator[threading.Thread]:
        """Another operator with its own event loop, as a second replica would be: kopf
        cancels every task started after its own start when it exits, so two operators
        cannot share one loop."""
        config = dataclasses.replace(self.config, **overrides)
        stop, ready = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(run(config, clock=self.clock, stop_flag=stop, ready_flag=ready))
            except BaseException as error:  # reported by the test thread
                failure.append(error)
                ready.set()

        thread = threading.Thread(target=main, name=f"operator-{config.writer}", daemon=True)
        thread.start()
        assert await asyncio.to_thread(ready.wait, WAIT), "the operator did not become ready"
        if failure:
            raise failure[0]
        try:
            yield thread
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, WAIT)
            assert not thread.is_alive(), "the operator did not stop"
            if failure:
                raise failure[0]


@pytest.fixture
async def jit(emulator: EmulatorHandle, kubeconfig: Path, tmp_path: Path) -> Harness:
    return Harness(emulator, kubeconfig, tmp_path)
