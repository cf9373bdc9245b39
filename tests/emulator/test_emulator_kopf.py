"""kopf operators running in the test's event loop against the emulator.

The pattern the operator tests follow: a fresh `kopf.OperatorRegistry()`, handlers bound to
it, and `async with kopf_runner(registry): ...` (tests/conftest.py) around the scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import kopf
import kubernetes.client
import pytest

from jitgate.devtools.emulator import ApiError, EmulatorHandle

G, V = "jitgate.dev", "v1alpha1"
AR = (G, V, "accessrequests")


def request(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"reason": "test", "actions": [{"verb": "exec"}]}}


async def until(condition: Callable[[], Any], time_limit: float = 10) -> Any:
    async with asyncio.timeout(time_limit):
        while not (result := condition()):  # noqa: ASYNC110 - polls state kopf changes
            await asyncio.sleep(0.01)
    return result


def gone(emulator: EmulatorHandle, resource: str, name: str, ns: str = "prod") -> bool:
    try:
        emulator.emulator.read_object(resource, ns, name)
    except ApiError:
        return True
    return False


@pytest.mark.parametrize("initial_streaming", [False, True], ids=["list-then-watch", "streaming"])
async def test_create_status_timer_delete_round(
    emulator: EmulatorHandle, kopf_runner: Any, initial_streaming: bool
) -> None:
    registry = kopf.OperatorRegistry()
    crd = kubernetes.client.CustomObjectsApi(
        kubernetes.client.ApiClient(emulator.kubernetes_configuration("jitgate-operator"))
    )

    created_at: dict[str, float] = {}  # creationTimestamp has 1 s precision: too coarse here

    @kopf.on.create(*AR, registry=registry)
    def created(name: str, patch: kopf.Patch, **_: Any) -> None:
        created_at[name] = time.monotonic()
        patch.status["phase"] = "Pending"

    @kopf.timer(*AR, interval=0.5, registry=registry)
    def expire(name: str, namespace: str | None, status: kopf.Status, **_: Any) -> None:
        age = time.monotonic() - created_at.get(name, time.monotonic())
        assert namespace is not None  # AccessRequests are namespaced
        if status.get("phase") == "Pending" and age >= 1:  # a 1 s TTL
            crd.delete_namespaced_custom_object(G, V, namespace, "accessrequests", name)

    settings = kopf.OperatorSettings()
    settings.watching.initial_streaming = initial_streaming
    async with kopf_runner(registry, settings):
        started = time.monotonic()
        emulator.emulator.create_object("accessrequests", request("ttl"), "prod")
        await until(lambda: gone(emulator, "accessrequests", "ttl"))
        elapsed = time.monotonic() - started
    stopped = time.monotonic() - started - elapsed

    history = emulator.emulator.objects[emulator.emulator.resolve("ar"), "prod", "ttl"].history
    phases = [v.get("status", {}).get("phase") for v in history if v is not None]
    assert "Pending" in phases  # on.create set the status before the timer deleted it
    assert history[-1] is None
    # Measured here: ~1.0-1.5 s (the 1 s TTL, then the next 0.5 s tick); kopf stops at once.
    # Only the TTL is asserted: how much later it happens depends on the machine's load.
    print(f"kopf create->status->timer-delete round: {elapsed:.2f}s, stop: {stopped:.2f}s")
    assert elapsed >= 1.0


async def test_finalizer_flow(
    emulator: EmulatorHandle, kopf_runner: Any, kube_client: kubernetes.client.ApiClient
) -> None:
    registry = kopf.OperatorRegistry()
    seen: list[Any] = []
    release = asyncio.Event()

    @kopf.on.delete(*AR, registry=registry)
    async def deleted(meta: kopf.Meta, **_: Any) -> None:
        seen.append(meta.get("deletionTimestamp"))
        await release.wait()

    crd = kubernetes.client.CustomObjectsApi(kube_client)
    emu = emulator.emulator
    async with kopf_runner(registry):
        emu.create_object("accessrequests", request("fin"), "prod")
        await until(
            lambda: emu.read_object("accessrequests", "prod", "fin")["metadata"].get("finalizers")
        )
        await asyncio.to_thread(crd.delete_namespaced_custom_object, *AR[:2], "prod", AR[2], "fin")
        await until(lambda: seen)
        # The object stays, marked for deletion, while kopf's handler holds its finalizer.
        assert emu.read_object("accessrequests", "prod", "fin")["metadata"]["deletionTimestamp"]
        release.set()
        await until(lambda: gone(emulator, "accessrequests", "fin"))
    assert seen[0]


async def test_grant_owned_by_a_request_is_deleted_with_it(
    emulator: EmulatorHandle, kopf_runner: Any
) -> None:
    registry = kopf.OperatorRegistry()
    emu = emulator.emulator

    @kopf.on.create(*AR, registry=registry)  # async: the emulator is not thread-safe
    async def approve(name: str, namespace: str | None, body: kopf.Body, **_: Any) -> None:
        grant: dict[str, Any] = {"metadata": {"name": f"{name}-grant"}, "spec": {"user": "alice"}}
        kopf.adopt(grant, owner=body)
        emu.create_object("grants", grant, namespace)

    async with kopf_runner(registry):
        emu.create_object("accessrequests", request("owner"), "prod")
        await until(lambda: not gone(emulator, "grants", "owner-grant"))
        emu.delete_object("accessrequests", "prod", "owner")
        assert gone(emulator, "grants", "owner-grant")


async def test_kopf_relists_after_410_gone(emulator: EmulatorHandle, kopf_runner: Any) -> None:
    registry = kopf.OperatorRegistry()
    handled: list[str] = []
    emu = emulator.emulator

    @kopf.on.create(*AR, registry=registry)
    def created(name: str, **_: Any) -> None:
        handled.append(name)

    def lists() -> int:
        return sum(
            1
            for r in emu
            if r.resource == emu.resolve("ar") and r.action == kopf_list and r.name is None
        )

    kopf_list = emu.action.LIST  # type: ignore[attr-defined]  # kmock's enum behind a callable
    async with kopf_runner(registry):
        emu.create_object("accessrequests", request("one"), "prod")
        await until(lambda: handled == ["one"])
        assert lists() == 1
        emu.expire_history()  # kopf's next watch resumes from a version the server forgot:
        emu.close_watches()  # it gets 410 Gone, lists again and watches from the new version
        await until(lambda: lists() == 2)
        emu.create_object("accessrequests", request("two"), "prod")
        await until(lambda: handled == ["one", "two"])


async def test_kopf_peering(emulator: EmulatorHandle, kopf_runner: Any) -> None:
    registry = kopf.OperatorRegistry()
    handled: list[str] = []
    emu = emulator.emulator
    peering = "kopf.dev/v1/clusterkopfpeerings"
    emu.create_object(peering, {"metadata": {"name": "default"}})

    @kopf.on.create(*AR, registry=registry)
    def created(name: str, **_: Any) -> None:
        handled.append(name)

    async with kopf_runner(registry, standalone=False, peering_name="default"):
        emu.create_object("accessrequests", request("peered"), "prod")
        await until(lambda: handled == ["peered"])
        assert len(emu.read_object(peering, None, "default")["status"]) == 1  # kopf's keep-alive
    assert emu.read_object(peering, None, "default").get("status", {}) == {}  # gone at exit
