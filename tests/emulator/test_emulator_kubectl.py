"""The real kubectl against the emulator: the commands jitgate's users and tests run."""

from __future__ import annotations

import asyncio
import json
from shlex import split
from typing import Any

import pytest
import yaml

from jitgate.devtools.emulator import EmulatorHandle

pytestmark = pytest.mark.kubectl

REQUEST = """
apiVersion: jitgate.dev/v1alpha1
kind: AccessRequest
metadata: {name: fix-web-0, namespace: prod}
spec:
  actions: [{verb: exec, resource: pods, names: [web-0]}]
  duration: 15m
  reason: "INC-1234: worker stuck"
  requester: {user: alice}
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n"


@pytest.fixture
async def prod(kubectl: Any) -> None:
    await kubectl("apply", "--validate=false", "-f", "-", input=NAMESPACE)


async def test_apply_get_and_output_formats(kubectl: Any, prod: None) -> None:
    out = await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
    assert out.stdout.strip() == "accessrequest.jitgate.dev/fix-web-0 created"
    out = await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
    assert out.stdout.strip() == "accessrequest.jitgate.dev/fix-web-0 unchanged"

    table = (await kubectl("get", "ar", "-n", "prod")).stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "PHASE"]  # the CRD's printer columns
    assert table[1].split()[0] == "fix-web-0"

    obj = (await kubectl("get", "accessrequest", "fix-web-0", "-n", "prod", "-o", "json")).json()
    assert obj["spec"]["reason"] == "INC-1234: worker stuck"
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    as_yaml = yaml.safe_load((await kubectl("get", "ar", "-n", "prod", "-o", "yaml")).stdout)
    assert as_yaml["kind"] == "List" and as_yaml["items"][0]["metadata"]["name"] == "fix-web-0"

    names = (await kubectl("get", "ns", "-o", "name")).stdout.split()
    assert {"namespace/default", "namespace/prod"} <= set(names)

    missing = await kubectl("get", "ar", "nosuch", "-n", "prod", check=False)
    assert missing.returncode == 1
    assert 'accessrequests.jitgate.dev "nosuch" not found' in missing.stderr


async def test_create_and_already_exists(kubectl: Any, prod: None) -> None:
    out = await kubectl("create", "--validate=false", "-f", "-", input=REQUEST)
    assert out.stdout.strip() == "accessrequest.jitgate.dev/fix-web-0 created"
    again = await kubectl("create", "--validate=false", "-f", "-", input=REQUEST, check=False)
    assert again.returncode == 1 and "AlreadyExists" in again.stderr


async def test_status_patches_merge_and_json(kubectl: Any, prod: None) -> None:
    await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
    status = {"status": {"phase": "Pending", "approvals": []}, "spec": {"reason": "changed"}}
    await kubectl(
        *split("patch ar fix-web-0 -n prod --subresource=status --type=merge -p"),
        json.dumps(status),
    )
    approval = [
        {
            "op": "add",
            "path": "/status/approvals/-",
            "value": {"decision": "Approve", "comment": "ok"},
        }
    ]
    out = await kubectl(
        *split("patch ar fix-web-0 -n prod --subresource=status --type=json -p"),
        json.dumps(approval),
        user="bob",
    )
    assert out.stdout.strip() == "accessrequest.jitgate.dev/fix-web-0 patched"
    obj = (await kubectl("get", "ar", "fix-web-0", "-n", "prod", "-o", "json")).json()
    assert obj["status"] == {"phase": "Pending", "approvals": [approval[0]["value"]]}
    assert obj["spec"]["reason"] == "INC-1234: worker stuck"  # /status ignores the spec
    assert (await kubectl("get", "ar", "-n", "prod")).stdout.splitlines()[1].split()[1] == "Pending"

    # A failed JSON-patch test op is a 422, as kubectl users see it from a real API server.
    stale = [{"op": "test", "path": "/status/phase", "value": "Denied"}]
    failed = await kubectl(
        *split("patch ar fix-web-0 -n prod --subresource=status --type=json -p"),
        json.dumps(stale),
        check=False,
    )
    assert failed.returncode == 1 and "The request is invalid" in failed.stderr


async def test_label_and_selectors(kubectl: Any, prod: None) -> None:
    await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
    out = await kubectl("label", "ar", "fix-web-0", "-n", "prod", "team=payments")
    assert out.stdout.strip() == "accessrequest.jitgate.dev/fix-web-0 labeled"
    selected = await kubectl("get", "ar", "-n", "prod", "-l", "team=payments", "-o", "name")
    assert selected.stdout.split() == ["accessrequest.jitgate.dev/fix-web-0"]
    none = await kubectl("get", "ar", "-n", "prod", "-l", "team=other", "-o", "name")
    assert none.stdout.strip() == ""


async def test_delete_honours_finalizers(
    kubectl: Any, prod: None, emulator: EmulatorHandle
) -> None:
    await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
    await kubectl(
        *split("patch ar fix-web-0 -n prod --type=merge -p"),
        '{"metadata": {"finalizers": ["jitgate.dev/audit"]}}',
    )
    await kubectl("delete", "ar", "fix-web-0", "-n", "prod", "--wait=false")
    obj = emulator.emulator.read_object("ar", "prod", "fix-web-0")
    assert obj["metadata"]["deletionTimestamp"]
    # `kubectl delete` waits until the object is really gone: here, once the finalizer goes.
    waiting = asyncio.create_task(kubectl("delete", "ar", "fix-web-0", "-n", "prod"))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    emulator.emulator.patch_object("ar", "prod", "fix-web-0", {"metadata": {"finalizers": None}})
    out = await asyncio.wait_for(waiting, 60)  # bounds a failure only
    assert out.stdout.strip() == 'accessrequest.jitgate.dev "fix-web-0" deleted'
    listing = await kubectl("get", "ar", "-n", "prod", "-o", "name")
    assert listing.stdout.strip() == ""


async def test_get_watch(kubectl: Any, prod: None) -> None:
    watch = await kubectl.start("get", "ar", "-n", "prod", "-w", "-o", "json")
    try:
        # The watch starts empty: wait until kubectl is watching (it lists first).
        await asyncio.sleep(1.0)
        await kubectl("apply", "--validate=false", "-f", "-", input=REQUEST)
        await kubectl(
            *split("patch ar fix-web-0 -n prod --subresource=status --type=merge -p"),
            '{"status": {"phase": "Approved"}}',
        )
        await kubectl("delete", "ar", "fix-web-0", "-n", "prod")
        decoder, buffer = json.JSONDecoder(), ""
        seen: list[Any] = []
        assert watch.stdout is not None
        async with asyncio.timeout(10):
            while len(seen) < 3:
                buffer += (await watch.stdout.read(65536)).decode()
                while buffer.strip():
                    try:
                        obj, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break  # an incomplete object: read more
                    buffer = buffer.lstrip()[end:]
                    seen.append(obj.get("status", {}).get("phase"))
        assert seen == [None, "Approved", "Approved"]  # added, modified, deleted
    finally:
        watch.kill()
        await watch.wait()


async def test_apply_crd_serves_the_new_kind(kubectl: Any) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    await kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(crd))
    await kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
    await kubectl("apply", "--validate=false", "-f", "-", input=widget)
    assert (await kubectl("get", "wd", "-o", "name")).stdout.split() == ["widget.example.com/w1"]
