"""The emulator's API semantics, through the `kubernetes` client and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kubernetes.client
import kubernetes.watch
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from jitgate.devtools.emulator import (
    ApiError,
    EmulatorHandle,
    KubeEmulator,
    register_jitgate_kinds,
    request_user,
    run_emulator,
)

G, V = "jitgate.dev", "v1alpha1"
CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"


def ar(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "AccessRequest",
        "metadata": {"name": name},
        "spec": {"reason": "r", "actions": [{"verb": "exec"}]},
        **extra,
    }


@pytest.fixture
def crd(kube_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kube_client)


@pytest.fixture
def core(kube_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kube_client)


async def create_ar(crd: Any, name: str, ns: str = "prod", **extra: Any) -> dict[str, Any]:
    body = ar(name, **extra)
    return await asyncio.to_thread(  # type: ignore[no-any-return]
        crd.create_namespaced_custom_object, G, V, ns, "accessrequests", body
    )


async def get_ar(crd: Any, name: str, ns: str = "prod") -> dict[str, Any]:
    return await asyncio.to_thread(  # type: ignore[no-any-return]
        crd.get_namespaced_custom_object, G, V, ns, "accessrequests", name
    )


async def patch_ar(
    crd: Any, name: str, body: Any, *, status: bool = False, ns: str = "prod"
) -> dict[str, Any]:
    fn = crd.patch_namespaced_custom_object_status if status else crd.patch_namespaced_custom_object
    kind = "json-patch" if isinstance(body, list) else "merge-patch"  # the client sends merge
    return await asyncio.to_thread(  # type: ignore[no-any-return]
        fn, G, V, ns, "accessrequests", name, body, _content_type=f"application/{kind}+json"
    )


def status_of(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    return json.loads(exc.body)  # type: ignore[no-any-return]


async def test_create_stamps_metadata_and_answers_201(crd: Any, core: Any) -> None:
    body = ar("a1")
    obj = await create_ar(crd, "a1")
    meta = obj["metadata"]
    assert meta["namespace"] == "prod"  # from the URL; the body had none
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert "namespace" not in body["metadata"]  # the caller's body is not mutated

    # The typed client returns None for a 200 on create; a 201 gives the object.
    cm = await asyncio.to_thread(
        core.create_namespaced_config_map, "prod", {"metadata": {"name": "c"}, "data": {"a": "b"}}
    )
    assert cm.metadata.name == "c" and cm.metadata.uid


async def test_generate_name(core: Any) -> None:
    body = {"metadata": {"generateName": "evt-"}, "reason": "x", "involvedObject": {}}
    first = await asyncio.to_thread(core.create_namespaced_event, "default", body)
    second = await asyncio.to_thread(core.create_namespaced_event, "default", body)
    assert first.metadata.name.startswith("evt-") and len(first.metadata.name) == 9
    assert first.metadata.name != second.metadata.name


async def test_global_resource_version_counter(crd: Any) -> None:
    a = await create_ar(crd, "a")
    b = await create_ar(crd, "b")
    patched = await patch_ar(crd, "a", {"metadata": {"labels": {"x": "y"}}})
    versions = [int(o["metadata"]["resourceVersion"]) for o in (a, b, patched)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    # A patch that changes nothing writes nothing, as in Kubernetes.
    again = await patch_ar(crd, "a", {"metadata": {"labels": {"x": "y"}}})
    assert again["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


async def test_conflicts_and_not_found_have_status_bodies(crd: Any) -> None:
    await create_ar(crd, "dup")
    with pytest.raises(ApiException) as exc:
        await create_ar(crd, "dup")
    assert exc.value.status == 409
    assert (
        status_of(exc.value).items()
        >= {"kind": "Status", "reason": "AlreadyExists", "code": 409}.items()
    )

    with pytest.raises(ApiException) as exc:
        await get_ar(crd, "missing")
    assert exc.value.status == 404
    body = status_of(exc.value)
    assert body["reason"] == "NotFound" and body["details"]["name"] == "missing"
    assert body["message"] == 'accessrequests.jitgate.dev "missing" not found'

    with pytest.raises(ApiException) as exc:  # optimistic concurrency on stale versions
        await patch_ar(crd, "dup", {"metadata": {"resourceVersion": "1"}, "spec": {"x": 1}})
    assert exc.value.status == 409 and status_of(exc.value)["reason"] == "Conflict"


async def test_json_patch_test_op_failure_is_422(crd: Any, emulator: EmulatorHandle) -> None:
    obj = await create_ar(crd, "jp")
    rv = obj["metadata"]["resourceVersion"]
    stale: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    with pytest.raises(ApiException) as exc:
        await patch_ar(crd, "jp", stale)
    assert exc.value.status == 422 and status_of(exc.value)["reason"] == "Invalid"
    fresh = [{**stale[0], "value": rv}, stale[1]]
    assert (await patch_ar(crd, "jp", fresh))["metadata"]["finalizers"] == ["x"]


async def test_lists_have_kind_api_version_and_resource_version(crd: Any, core: Any) -> None:
    await create_ar(crd, "l1")
    listing = await asyncio.to_thread(
        crd.list_namespaced_custom_object, G, V, "prod", "accessrequests"
    )
    assert listing["kind"] == "AccessRequestList" and listing["apiVersion"] == f"{G}/{V}"
    assert int(listing["metadata"]["resourceVersion"]) >= 1
    assert [i["metadata"]["name"] for i in listing["items"]] == ["l1"]
    pods = await asyncio.to_thread(core.list_pod_for_all_namespaces)
    assert pods.kind == "PodList" and pods.items == []


async def test_namespaces(core: Any, crd: Any) -> None:
    names = {ns.metadata.name for ns in (await asyncio.to_thread(core.list_namespace)).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    default = await asyncio.to_thread(core.read_namespace, "default")
    assert default.metadata.name == "default" and default.status.phase == "Active"
    await asyncio.to_thread(core.create_namespace, {"metadata": {"name": "prod"}})
    await create_ar(crd, "inside")
    await asyncio.to_thread(core.delete_namespace, "prod")
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.read_namespace, "prod")
    assert exc.value.status == 404
    with pytest.raises(ApiException):  # deleting a namespace deletes what is in it
        await get_ar(crd, "inside")


async def test_status_subresource_isolation(crd: Any) -> None:
    created = await create_ar(crd, "s1", status={"phase": "Approved"})
    assert "status" not in created  # CREATE ignores status
    obj = await patch_ar(crd, "s1", {"status": {"phase": "Pending"}}, status=True)
    assert obj["status"] == {"phase": "Pending"} and obj["metadata"]["generation"] == 1

    # The main resource ignores status; the status subresource ignores everything else.
    obj = await patch_ar(crd, "s1", {"spec": {"reason": "new"}, "status": {"phase": "Approved"}})
    assert obj["spec"]["reason"] == "new" and obj["status"] == {"phase": "Pending"}
    assert obj["metadata"]["generation"] == 2
    obj = await patch_ar(
        crd,
        "s1",
        {
            "spec": {"reason": "sneaky"},
            "metadata": {"labels": {"a": "b"}},
            "status": {"phase": "Denied"},
        },
        status=True,
    )
    assert obj["spec"]["reason"] == "new" and "labels" not in obj["metadata"]
    assert obj["status"] == {"phase": "Denied"} and obj["metadata"]["generation"] == 2

    # JSON patches to /status, as approvers send them.
    await patch_ar(crd, "s1", {"status": {"approvals": []}}, status=True)
    add = [{"op": "add", "path": "/status/approvals/-", "value": {"decision": "Approve"}}]
    obj = await patch_ar(crd, "s1", add, status=True)
    assert obj["status"]["approvals"] == [{"decision": "Approve"}]


async def test_replace_keeps_status_and_checks_resource_version(crd: Any) -> None:
    await create_ar(crd, "r1")
    current = await patch_ar(crd, "r1", {"status": {"phase": "Pending"}}, status=True)
    body = {**current, "spec": {"reason": "replaced"}, "status": {"phase": "Hacked"}}
    replaced = await asyncio.to_thread(
        crd.replace_namespaced_custom_object, G, V, "prod", "accessrequests", "r1", body
    )
    assert replaced["spec"] == {"reason": "replaced"} and replaced["status"]["phase"] == "Pending"
    with pytest.raises(ApiException) as exc:  # `body` carries the old resourceVersion
        await asyncio.to_thread(
            crd.replace_namespaced_custom_object, G, V, "prod", "accessrequests", "r1", body
        )
    assert exc.value.status == 409


async def test_finalizers_keep_the_object_until_removed(crd: Any) -> None:
    await create_ar(crd, "f1", metadata={"name": "f1", "finalizers": ["jitgate.dev/x"]})
    await asyncio.to_thread(
        crd.delete_namespaced_custom_object, G, V, "prod", "accessrequests", "f1"
    )
    obj = await get_ar(crd, "f1")
    assert obj["metadata"]["deletionTimestamp"]
    await asyncio.to_thread(
        crd.delete_namespaced_custom_object, G, V, "prod", "accessrequests", "f1"
    )
    assert (await get_ar(crd, "f1"))["metadata"]["deletionTimestamp"] == obj["metadata"][
        "deletionTimestamp"
    ]
    await patch_ar(crd, "f1", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        await get_ar(crd, "f1")
    assert exc.value.status == 404


async def test_owner_reference_cascade(crd: Any, emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    owner = await create_ar(crd, "req")
    other = await create_ar(crd, "other")

    def ref(obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{G}/{V}",
            "kind": "AccessRequest",
            "controller": True,
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
        }

    emu.create_object(
        "grants", {"metadata": {"name": "g1", "ownerReferences": [ref(owner)]}}, "prod"
    )
    emu.create_object(
        "grants",
        {
            "metadata": {
                "name": "g2",
                "ownerReferences": [ref(owner), ref(other)],
                "finalizers": ["keep"],
            }
        },
        "prod",
    )
    emu.create_object(
        "configmaps", {"metadata": {"name": "c1", "ownerReferences": [ref(other)]}}, "prod"
    )

    await asyncio.to_thread(
        crd.delete_namespaced_custom_object, G, V, "prod", "accessrequests", "req"
    )
    with pytest.raises(ApiError):
        emu.read_object("grants", "prod", "g1")  # its only owner is gone
    assert (
        "deletionTimestamp" not in emu.read_object("grants", "prod", "g2")["metadata"]
    )  # one left

    # Orphan: dependents lose the reference instead of being deleted.
    await asyncio.to_thread(
        crd.delete_namespaced_custom_object,
        G,
        V,
        "prod",
        "accessrequests",
        "other",
        body={"propagationPolicy": "Orphan"},
    )
    assert "ownerReferences" not in emu.read_object("configmaps", "prod", "c1")["metadata"]
    assert [
        r["name"] for r in emu.read_object("grants", "prod", "g2")["metadata"]["ownerReferences"]
    ] == ["req"]


async def test_cascade_respects_dependents_finalizers(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    owner = emu.create_object("accessrequests", ar("req"), "prod")
    ref = {
        "apiVersion": f"{G}/{V}",
        "kind": "AccessRequest",
        "name": "req",
        "uid": owner["metadata"]["uid"],
    }
    emu.create_object(
        "grants",
        {"metadata": {"name": "g", "ownerReferences": [ref], "finalizers": ["jitgate.dev/audit"]}},
        "prod",
    )
    emu.delete_object("accessrequests", "prod", "req")
    assert emu.read_object("grants", "prod", "g")["metadata"]["deletionTimestamp"]
    emu.patch_object("grants", "prod", "g", {"metadata": {"finalizers": []}})
    with pytest.raises(ApiError):
        emu.read_object("grants", "prod", "g")


async def test_watch_honours_resource_version(crd: Any, kube_client: Any) -> None:
    await create_ar(crd, "before")
    listing = await asyncio.to_thread(
        crd.list_namespaced_custom_object, G, V, "prod", "accessrequests"
    )
    rv = listing["metadata"]["resourceVersion"]
    await create_ar(crd, "after")
    await patch_ar(crd, "before", {"metadata": {"labels": {"a": "b"}}})

    def watch(**kwargs: Any) -> list[tuple[str, str]]:
        stream = kubernetes.watch.Watch().stream(
            crd.list_namespaced_custom_object,
            G,
            V,
            "prod",
            "accessrequests",
            timeout_seconds=1,
            **kwargs,
        )
        return [(e["type"], e["object"]["metadata"]["name"]) for e in stream]

    assert await asyncio.to_thread(watch, resource_version=rv) == [
        ("ADDED", "after"),
        ("MODIFIED", "before"),
    ]
    # Without a resourceVersion: the current state replayed as ADDED, nothing else.
    assert await asyncio.to_thread(watch) == [("ADDED", "after"), ("ADDED", "before")]


async def test_watch_is_json_and_namespaced_watch_sees_objects_posted_without_namespace(
    emulator: EmulatorHandle,
) -> None:
    url = f"/apis/{G}/{V}/namespaces/prod/accessrequests"
    params = {"watch": "true", "resourceVersion": "1"}
    async with (
        aiohttp.ClientSession(emulator.url) as session,
        session.get(url, params=params) as watch,
    ):
        assert watch.content_type == "application/json"
        async with session.post(url, json=ar("posted")) as created:
            assert created.status == 201
        async with session.post(url.replace("prod", "other"), json=ar("elsewhere")):
            pass
        event = json.loads(await watch.content.readline())
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "posted")
        assert event["object"]["metadata"]["namespace"] == "prod"


async def test_watch_subscribes_atomically_with_the_snapshot(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    names = [f"n{i:03}" for i in range(200)]
    seen: list[str] = []

    async def writer() -> None:
        for name in names:
            emu.create_object("accessrequests", ar(name), "prod")
            await asyncio.sleep(0)

    async with aiohttp.ClientSession(emulator.url) as session:
        task = asyncio.create_task(writer())
        # The timeout only bounds a failure: reading stops at as many events as objects, so
        # a lost event leaves a name missing and a repeated one takes another's place.
        params = {"watch": "true", "timeoutSeconds": "60"}
        async with session.get(f"/apis/{G}/{V}/accessrequests", params=params) as watch:
            async for line in watch.content:
                seen.append(json.loads(line)["object"]["metadata"]["name"])
                if len(seen) == len(names):
                    break
        await task
    assert sorted(seen) == names  # every object exactly once: none lost, none repeated


async def test_too_old_resource_version_is_410_gone(crd: Any, emulator: EmulatorHandle) -> None:
    listing = await asyncio.to_thread(
        crd.list_namespaced_custom_object, G, V, "prod", "accessrequests"
    )
    await create_ar(crd, "x")
    emulator.emulator.expire_history()

    def watch() -> list[Any]:
        return list(
            kubernetes.watch.Watch().stream(
                crd.list_namespaced_custom_object,
                G,
                V,
                "prod",
                "accessrequests",
                resource_version=listing["metadata"]["resourceVersion"],
                timeout_seconds=1,
            )
        )

    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(watch)
    assert exc.value.status == 410

    # The bounded history expires old events by itself too.
    emu = KubeEmulator(history_limit=3, builtins=False)
    emu.register("v1/configmaps", kind="ConfigMap", namespaced=True)
    for i in range(5):
        emu.create_object("configmaps", {"metadata": {"name": f"c{i}"}})
    assert [e.rv for e in emu._events] == [3, 4, 5]


async def test_selectors_filter_lists_and_watches(crd: Any, emulator: EmulatorHandle) -> None:
    await create_ar(crd, "a", metadata={"name": "a", "labels": {"team": "x", "tier": "1"}})
    await create_ar(crd, "b", metadata={"name": "b", "labels": {"team": "y"}})
    await create_ar(crd, "c")

    async def names(**kwargs: Any) -> list[str]:
        listing = await asyncio.to_thread(
            crd.list_namespaced_custom_object, G, V, "prod", "accessrequests", **kwargs
        )
        return [i["metadata"]["name"] for i in listing["items"]]

    assert await names(label_selector="team=x") == ["a"]
    assert await names(label_selector="team!=x") == ["b", "c"]
    assert await names(label_selector="team in (x, y),!tier") == ["b"]
    assert await names(label_selector="team") == ["a", "b"]
    assert await names(field_selector="metadata.name=c") == ["c"]

    # A watch with a selector sees an object leave the selection as DELETED.
    url = f"/apis/{G}/{V}/namespaces/prod/accessrequests"
    params = {"watch": "true", "labelSelector": "team=x", "resourceVersion": "1"}
    async with (
        aiohttp.ClientSession(emulator.url) as session,
        session.get(url, params={**params, "timeoutSeconds": "0.3"}) as watch,
    ):
        await patch_ar(crd, "a", {"metadata": {"labels": {"team": "z"}}})
        events = [json.loads(line) async for line in watch.content]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]


async def test_initial_events_end_with_a_bookmark(emulator: EmulatorHandle) -> None:
    emulator.emulator.create_object("accessrequests", ar("i1"), "prod")
    params = {"watch": "true", "sendInitialEvents": "true", "timeoutSeconds": "0.2"}
    async with (
        aiohttp.ClientSession(emulator.url) as session,
        session.get(f"/apis/{G}/{V}/accessrequests", params=params) as watch,
    ):
        events = [json.loads(line) async for line in watch.content]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_scale_subresource(kube_client: Any) -> None:
    apps = kubernetes.client.AppsV1Api(kube_client)
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "a", "image": "i"}]},
            },
        },
    }
    await asyncio.to_thread(apps.create_namespaced_deployment, "prod", body)  # type: ignore[arg-type]  # a dict body is sent as is
    scale = await asyncio.to_thread(apps.read_namespaced_deployment_scale, "web", "prod")
    assert scale.spec and scale.status
    assert scale.spec.replicas == 1 and scale.status.selector == "app=web"
    await asyncio.to_thread(
        apps.patch_namespaced_deployment_scale, "web", "prod", {"spec": {"replicas": 3}}
    )
    deployment = await asyncio.to_thread(apps.read_namespaced_deployment, "web", "prod")
    assert deployment.spec and deployment.metadata
    assert deployment.spec.replicas == 3 and deployment.metadata.generation == 2


async def test_dry_run_changes_nothing(crd: Any, emulator: EmulatorHandle) -> None:
    obj = await asyncio.to_thread(
        crd.create_namespaced_custom_object, G, V, "prod", "accessrequests", ar("d"), dry_run="All"
    )
    assert obj["metadata"]["name"] == "d"
    with pytest.raises(ApiException):
        await get_ar(crd, "d")


async def test_delete_collection(crd: Any) -> None:
    for name in ("a", "b"):
        await create_ar(crd, name, metadata={"name": name, "labels": {"gc": "yes"}})
    await create_ar(crd, "c")
    await asyncio.to_thread(
        crd.delete_collection_namespaced_custom_object,
        G,
        V,
        "prod",
        "accessrequests",
        label_selector="gc=yes",
    )
    listing = await asyncio.to_thread(
        crd.list_namespaced_custom_object, G, V, "prod", "accessrequests"
    )
    assert [i["metadata"]["name"] for i in listing["items"]] == ["c"]


async def test_crds_created_through_the_api_are_served(emulator: EmulatorHandle) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}
            ],
        },
    }
    async with aiohttp.ClientSession(emulator.url) as session:
        async with session.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd
        ) as rsp:
            assert rsp.status == 201
        async with session.get("/apis/example.com/v1") as rsp:
            resources = {r["name"]: r for r in (await rsp.json())["resources"]}
        async with session.post(
            "/apis/example.com/v1/widgets", json={"metadata": {"name": "w"}}
        ) as rsp:
            widget = await rsp.json()
    assert resources["widgets"]["kind"] == "Widget" and resources["widgets"]["namespaced"] is False
    assert "widgets/status" in resources
    assert "namespace" not in widget["metadata"]
    established = emulator.emulator.read_object(
        "customresourcedefinitions", None, "widgets.example.com"
    )
    assert {"type": "Established", "status": "True"}.items() <= established["status"]["conditions"][
        1
    ].items()


async def test_jitgate_kinds_are_discoverable() -> None:
    async with (
        run_emulator() as handle,
        aiohttp.ClientSession(handle.url) as session,
        session.get(f"/apis/{G}/{V}") as rsp,
    ):
        resources = {r["name"]: r for r in (await rsp.json())["resources"]}
    assert resources["accesspolicies"]["namespaced"] is False
    assert resources["accesspolicies"]["kind"] == "AccessPolicy"
    assert "jitpolicy" in resources["accesspolicies"]["shortNames"]
    for plural, kind, short in (
        ("accessrequests", "AccessRequest", "ar"),
        ("grants", "Grant", "jitgrant"),
    ):
        assert resources[plural]["namespaced"] is True and resources[plural]["kind"] == kind
        assert short in resources[plural]["shortNames"]
        assert f"{plural}/status" in resources


def test_served_kinds_are_the_crd_manifests() -> None:
    manifests = sorted(CRDS_DIR.glob("*.yaml"))
    from_crds, generated = KubeEmulator(builtins=False), KubeEmulator(builtins=False)
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                from_crds.register_crd(doc)
    register_jitgate_kinds(generated)
    assert len(manifests) == 3
    assert set(from_crds.resources) == set(generated.resources)
    for res in generated.resources:
        a, b = from_crds.resources[res], generated.resources[res]
        assert (a.kind, a.singular, a.namespaced) == (b.kind, b.singular, b.namespaced), res
        assert (a.subresources, a.shortnames) == (b.subresources, b.shortnames), res
        assert from_crds.table(res, []) == generated.table(res, []), res


async def test_user_identity_and_kmock_reactions_take_priority(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    users: list[str | None] = []
    url = f"/apis/{G}/{V}/namespaces/prod/accessrequests"

    def deny_bob(request: kmock.Request) -> Any:
        users.append(request_user(request))
        if request_user(request) == "bob":
            return kmock.Response(status=403, payload={"kind": "Status", "code": 403})  # type: ignore[attr-defined]
        raise NotImplementedError  # not ours to answer: fall through to the emulator

    emu[kmock.method.POST, kmock.resource(G, V, "accessrequests")] << deny_bob
    async with aiohttp.ClientSession(emulator.url) as session:
        for user in ("bob", "alice"):
            headers = {"Authorization": f"Bearer {user}"}
            async with session.post(url, json=ar(user), headers=headers) as rsp:
                assert rsp.status == (403 if user == "bob" else 201)
    assert users == ["bob", "alice"]
    assert [o["metadata"]["name"] for o in emu.list_objects("ar")["items"]] == ["alice"]


async def test_emulator_api_accepts_short_names(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    assert (
        emu.resolve("ar")
        == emu.resolve("accessrequests.jitgate.dev")
        == emu.resolve(f"{G}/{V}/accessrequests")
    )
    assert emu.resolve("pods") == kmock.resource("", "v1", "pods")
    with pytest.raises(ApiError):
        emu.resolve("nosuchthings")


async def test_reads_are_copies_and_crds_load_idempotently(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator
    created = emu.create_object("accessrequests", ar("c1"), "prod")
    created["spec"]["reason"] = "edited by the caller"
    read = emu.read_object("accessrequests", "prod", "c1")
    read["spec"]["reason"] = "edited again"
    emu.list_objects("ar")["items"][0]["spec"]["reason"] = "and again"
    assert emu.read_object("accessrequests", "prod", "c1")["spec"]["reason"] == "r"

    manifests = sorted(CRDS_DIR.glob("*.yaml")) or [Path("/nonexistent")]
    if manifests[0].exists():
        first = {c["metadata"]["name"]: c["metadata"]["uid"] for c in emu.load_crds(*manifests)}
        again = {c["metadata"]["name"]: c["metadata"]["uid"] for c in emu.load_crds(*manifests)}
        assert first == again  # replaced in place, not deleted and recreated


async def test_wait_for_wakes_up_on_writes(emulator: EmulatorHandle) -> None:
    emu = emulator.emulator

    def created() -> dict[str, Any] | None:
        items = emu.list_objects("ar", "prod")["items"]
        return items[0] if items else None

    asyncio.get_running_loop().call_later(0.05, emu.create_object, "ar", ar("late"), "prod")
    late = await emu.wait_for(created, time_limit=2)
    assert late is not None and late["metadata"]["name"] == "late"
    with pytest.raises(TimeoutError):
        await emu.wait_for(lambda: False, time_limit=0.05)


async def test_a_list_comes_in_pages_with_limit_and_continue(emulator: EmulatorHandle) -> None:
    names = [f"n{i:02}" for i in range(7)]
    for name in reversed(names):
        emulator.emulator.create_object("accessrequests", ar(name), "prod")
    seen: list[str] = []
    token = ""
    async with aiohttp.ClientSession(emulator.url) as session:
        while True:
            params = {"limit": "3", **({"continue": token} if token else {})}
            async with session.get(
                f"/apis/{G}/{V}/namespaces/prod/accessrequests", params=params
            ) as page:
                listing = await page.json()
            seen += [obj["metadata"]["name"] for obj in listing["items"]]
            token = listing["metadata"].get("continue", "")
            if not token:
                break
    assert seen == names  # in name order, each once
