"""Upgrading from the previous release: its CRDs (tests/fixtures/previous-release) and objects
written the way it wrote them, then the README's upgrade order (`kubectl apply` of crds/, then
the chart: here `cluster.install`, which applies crds/ and starts today's webhook and operator).
Every old AccessPolicy, AccessRequest and Grant still validates and keeps deciding.

A kube-apiserver of its own: the old objects must exist before jitgate does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver import harness
from e2e import cluster as cluster_module
from e2e import manifests
from e2e.cluster import JitCluster, denied_by

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

OLD_CRDS = Path(__file__).resolve().parents[1] / "fixtures" / "previous-release" / "crds"
NEW_CRDS = cluster_module.CRDS_DIR
NAMESPACE = "legacy"
GROUP_VERSION = "jitgate.dev/v1alpha1"
DENIED = denied_by("connect")
Obj = dict[str, Any]


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def old_objects(now: dt.datetime) -> tuple[Obj, Obj, Obj, Obj]:
    """What the previous release's users and operator had written: a policy for `legacy`, a
    pending request, an approved one and the Grant the operator issued for it."""
    policy = {
        "apiVersion": GROUP_VERSION,
        "kind": "AccessPolicy",
        "metadata": {"name": "legacy"},
        "spec": {
            "namespaces": {"names": [NAMESPACE]},
            "actions": ["exec"],
            "resources": ["pods"],
            "approvers": {"groups": ["sre"]},
            "maxDuration": "1h",
            "defaultDuration": "15m",
        },
    }
    requester = {"user": "alice", "groups": ["developers", "system:authenticated"]}

    def request(name: str, pod: str, status: Obj) -> Obj:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "AccessRequest",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "actions": [{"verb": "exec", "resource": "pods", "names": [pod]}],
                "duration": "30m",
                "reason": "INC-1: before the upgrade",
                "requester": requester,
            },
            "status": status,
        }

    pending = request(
        "old-pending",
        "old-0",
        {
            "phase": "Pending",
            "policy": "legacy",
            "requiredApprovals": 1,
            "pendingDeadline": stamp(now + dt.timedelta(minutes=50)),
        },
    )
    approval = {
        "user": "bob",
        "groups": ["sre", "system:authenticated"],
        "decision": "Approve",
        "time": stamp(now - dt.timedelta(minutes=1)),
        "specDigest": "sha256:" + "1" * 64,
    }
    approved = request(
        "old-approved",
        "old-1",
        {
            "phase": "Approved",
            "policy": "legacy",
            "requiredApprovals": 1,
            "approvals": [approval],
            "observedApprovals": 1,
            "grant": {
                "name": "old-approved-7f3k",
                "expiresAt": stamp(now + dt.timedelta(minutes=29)),
            },
        },
    )
    grant = {
        "apiVersion": GROUP_VERSION,
        "kind": "Grant",
        "metadata": {"name": "old-approved-7f3k", "namespace": NAMESPACE},
        "spec": {
            "user": "alice",
            "actions": [{"verb": "exec", "resource": "pods", "names": ["old-1"]}],
            "notBefore": stamp(now - dt.timedelta(minutes=1)),
            "expiresAt": stamp(now + dt.timedelta(minutes=29)),
            "accessRequest": {"name": "old-approved", "uid": ""},  # filled in once created
            "policy": "legacy",
            "approvals": [approval],
        },
    }
    return policy, pending, approved, grant


def create_as_the_old_release(api: harness.KubeAPIServer, *objects: Obj) -> None:
    """Each object created, then its status written through the status subresource."""
    for obj in objects:
        body = {k: v for k, v in obj.items() if k != "status"}
        created = api.kubectl("admin", "create", "-o", "json", "-f", "-", input=json.dumps(body))
        assert created.returncode == 0, created.stderr
        if "status" in obj:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            patch = json.dumps({"status": obj["status"]})
            api.kubectl(
                "admin", "patch", kind, name, "-n", NAMESPACE, "--subresource=status",
                "--type=merge", "-p", patch, check=True,
            )  # fmt: skip


@dataclass(frozen=True)
class Upgrade:
    cluster: JitCluster
    before: dict[str, Obj]  # "Kind/name" -> the object as the old release left it
    revalidated: dict[str, str]  # "Kind/name" -> "" or why a dry-run write of it failed


def stored(api: harness.KubeAPIServer) -> dict[str, Obj]:
    found = {}
    for kind in ("accesspolicies", "accessrequests", "grants"):
        listed = api.kubectl("admin", "get", kind, "-A", "-o", "json", check=True)
        for obj in json.loads(listed.stdout)["items"]:
            found[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return found


@pytest.fixture(scope="module")
def upgraded(
    kube_apiserver_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upgrade]:
    """The previous release's CRDs and objects; then, in the README's order, today's CRDs
    (each old object written back in a server-side dry run), the chart and its processes."""
    tmpdir = tmp_path_factory.mktemp("upgrade")
    with harness.start_kube_apiserver(kube_apiserver_binary, tmpdir / "kube-apiserver") as api:
        api.install_crds(OLD_CRDS)
        api.create_namespace(NAMESPACE, labels=dict(manifests.PROTECTED_LABEL))
        policy, pending, approved, grant = old_objects(dt.datetime.now(dt.UTC))
        create_as_the_old_release(api, policy, pending, approved)
        uid = stored(api)["AccessRequest/old-approved"]["metadata"]["uid"]
        grant["spec"]["accessRequest"]["uid"] = uid
        grant["metadata"]["ownerReferences"] = [
            {
                "apiVersion": GROUP_VERSION, "kind": "AccessRequest", "name": "old-approved",
                "uid": uid, "controller": True, "blockOwnerDeletion": True,
            }
        ]  # fmt: skip
        create_as_the_old_release(api, grant)
        before = stored(api)

        api.install_crds(NEW_CRDS)
        revalidated = {}
        for key, obj in before.items():
            proc = api.kubectl(
                "admin", "replace", "--dry-run=server", "-f", "-", input=json.dumps(obj)
            )
            revalidated[key] = "" if proc.returncode == 0 else proc.stderr.strip()

        with cluster_module.install(api, tmpdir / "jitgate", echo=lambda _message: None) as c:
            c.apply("admin", *manifests.persona_rbac([NAMESPACE]))
            c.apply("admin", *(manifests.pod(NAMESPACE, name) for name in ("old-0", "old-1")))
            yield Upgrade(c, before, revalidated)


def test_the_crds_change_only_by_compatible_additions() -> None:
    """Nothing the old schema accepted is refused by the new one: no field removed, no field
    newly required, no version dropped."""
    for old_file in sorted(OLD_CRDS.glob("*.yaml")):
        old = yaml.safe_load(old_file.read_text())
        new = yaml.safe_load((NEW_CRDS / old_file.name).read_text())
        old_versions = {v["name"]: v for v in old["spec"]["versions"]}
        new_versions = {v["name"]: v for v in new["spec"]["versions"]}
        assert set(old_versions) <= set(new_versions), old_file.name
        for name, version in old_versions.items():
            assert new_versions[name]["served"], f"{old_file.name}: {name} no longer served"
            _compatible(
                version["schema"]["openAPIV3Schema"],
                new_versions[name]["schema"]["openAPIV3Schema"],
                f"{old_file.name}:{name}",
            )


def _compatible(old: Obj, new: Obj, where: str) -> None:
    assert set(new.get("required", [])) <= set(old.get("required", [])), f"{where}: newly required"
    for field, schema in (old.get("properties") or {}).items():
        assert field in (new.get("properties") or {}), f"{where}.{field} was removed"
        _compatible(schema, new["properties"][field], f"{where}.{field}")
    if "items" in old:
        _compatible(old["items"], new["items"], f"{where}[]")


def test_every_old_object_validates_against_the_new_crds_and_keeps_its_spec(
    upgraded: Upgrade,
) -> None:
    assert sorted(upgraded.before) == [
        "AccessPolicy/legacy", "AccessRequest/old-approved", "AccessRequest/old-pending",
        "Grant/old-approved-7f3k",
    ]  # fmt: skip
    assert upgraded.revalidated == dict.fromkeys(upgraded.before, "")
    for key, old in upgraded.before.items():
        kind, name = key.split("/")
        now = upgraded.cluster.get(kind.lower(), name, old["metadata"].get("namespace"))
        assert now is not None, f"{key} is gone after the upgrade"
        assert now["spec"] == old["spec"], key


def test_an_old_grant_still_admits_what_it_grants(
    upgraded: Upgrade,
) -> None:
    c = upgraded.cluster
    admitted = c.exec("alice", NAMESPACE, "old-1", "ls")
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
    denied = c.exec("alice", NAMESPACE, "old-0", "ls")
    assert denied.stderr.startswith(DENIED), denied.stderr
    # The namespace is protected by label too, so the chart's policy governs it as well.
    assert "AccessPolicies legacy and production require an approved grant" in denied.stderr


def test_an_old_pending_request_is_approved_into_a_grant(
    upgraded: Upgrade,
) -> None:
    c = upgraded.cluster
    approved = c.jit("bob", "approve", "old-pending", "-n", NAMESPACE, "--yes")
    assert approved.returncode == 0, approved.stderr
    request = c.wait_phase(NAMESPACE, "old-pending", "Approved", timeout=60)
    grant = c.get("grant", request["status"]["grant"]["name"], NAMESPACE)
    assert grant is not None and grant["spec"]["user"] == "alice"
    admitted = c.exec("alice", NAMESPACE, "old-0", "ls")
    assert c.no_kubelet_error() in admitted.stderr, admitted.stderr
