"""The chart as a real Helm release (helm-python-sdk's install/upgrade/uninstall, with
`lookup` reading the live cluster): the webhook's TLS Secret and the audit HMAC key survive
upgrades, and the key survives an uninstall; and `helm upgrade` from the previous release's
chart (tests/fixtures/previous-release/chart) in the README's order.

A kube-apiserver of its own: the release's webhook configurations point at an in-cluster
Service that nothing serves, and they fail closed, so they must not meet the other tests.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from apiserver.harness import KubeAPIServer
from chart import render
from e2e import cluster as cluster_module
from e2e.cluster import HelmCluster

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

NAMESPACE = "jitgate"  # release_cluster's helm configuration uses it too
RELEASE = "jitgate"
TLS_SECRET = "jitgate-webhook-tls"
KEY_SECRET = "jitgate-audit-key"
TIMEOUT_S = 60
PREVIOUS_CHART = Path(__file__).resolve().parents[1] / "fixtures" / "previous-release" / "chart"
WEBHOOK_KINDS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")


def secrets(api: KubeAPIServer, *names: str) -> dict[str, dict[str, Any]]:
    """name -> Secret, or a missing name when it does not exist."""
    out = api.kubectl("admin", "get", "secrets", "-n", NAMESPACE, "-o", "json", check=True)
    items = json.loads(out.stdout)["items"]
    return {s["metadata"]["name"]: s for s in items if s["metadata"]["name"] in names}


def ca_bundles(api: KubeAPIServer) -> set[str]:
    bundles = set()
    for kind in WEBHOOK_KINDS:
        out = api.kubectl("admin", "get", kind, RELEASE, "-o", "json", check=True).stdout
        bundles |= {hook["clientConfig"]["caBundle"] for hook in json.loads(out)["webhooks"]}
    return bundles


def live_webhooks(api: KubeAPIServer) -> dict[str, dict[str, Any]]:
    """`Kind/webhook name` -> the webhook as the API server holds it."""
    found = {}
    for kind in WEBHOOK_KINDS:
        out = api.kubectl("admin", "get", kind, RELEASE, "-o", "json", check=True).stdout
        configuration = json.loads(out)
        for hook in configuration["webhooks"]:
            found[f"{configuration['kind']}/{hook['name']}"] = hook
    return found


def jitgate_objects(api: KubeAPIServer) -> dict[str, dict[str, Any]]:
    """`Kind/name` -> every AccessPolicy and AccessRequest."""
    found = {}
    for kind in ("accesspolicies", "accessrequests"):
        out = api.kubectl("admin", "get", kind, "-A", "-o", "json", check=True).stdout
        for obj in json.loads(out)["items"]:
            found[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return found


# Runs before the test below on the module's API server (and leaves no release behind): the
# previous release's CRDs are installed by its chart only while the cluster has none.
def test_helm_upgrade_from_the_previous_release(release_cluster: HelmCluster) -> None:
    api, cfg = release_cluster.api, release_cluster.helm
    values = {"defaultPolicy": {"approvers": {"groups": ["sre"]}}}  # carried over by the upgrade
    installed = cfg.install(
        str(PREVIOUS_CHART), RELEASE, values,
        namespace=NAMESPACE, create_namespace=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert (installed["status"], installed["revision"]) == ("deployed", 1)
    # The release's own namespace is outside its webhooks (nothing serves them here), so the
    # request is written as the old release stored it; the policy is the chart's default one.
    request = {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "before-upgrade", "namespace": NAMESPACE},
        "spec": {
            "actions": [{"verb": "exec", "resource": "pods", "names": ["web-0"]}],
            "duration": "15m",
            "reason": "INC-2: written by the previous release",
            "requester": {"user": "alice", "groups": ["system:authenticated"]},
        },
    }
    api.kubectl("admin", "create", "-f", "-", input=json.dumps(request), check=True)
    before = jitgate_objects(api)
    assert sorted(before) == ["AccessPolicy/default", "AccessRequest/before-upgrade"]
    assert before["AccessPolicy/default"]["spec"]["approvers"] == {"groups": ["sre"]}
    first = secrets(api, TLS_SECRET, KEY_SECRET)

    # The README's order: today's CRDs (Helm never upgrades them), then the chart with the
    # release's own values. `--reuse-values` would also reuse the old chart's defaults, which
    # lack today's values: the render fails, and the release stays as it was.
    # Helm created the CRDs, so it manages their fields: the apply takes them over.
    api.kubectl(
        "admin", "apply", "--server-side", "--force-conflicts", "-f", str(cluster_module.CRDS_DIR),
        check=True,
    )  # fmt: skip
    chart = str(render.CHART_DIR)
    with pytest.raises(helm.HelmReleaseError, match="nil pointer"):
        cfg.upgrade(chart, RELEASE, {}, namespace=NAMESPACE, reuse_values=True, timeout=TIMEOUT_S)
    current = cfg.status(RELEASE)
    assert (current["status"], current["revision"]) == ("deployed", 1)
    own_values = cfg.get_values(RELEASE)
    assert own_values == values
    upgraded = cfg.upgrade(chart, RELEASE, own_values, namespace=NAMESPACE, timeout=TIMEOUT_S)
    assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2)

    second = secrets(api, TLS_SECRET, KEY_SECRET)
    for name in (TLS_SECRET, KEY_SECRET):
        assert second[name]["data"] == first[name]["data"], f"{name} changed on upgrade"
    today = render.render_chart(values, namespace=NAMESPACE, is_upgrade=True)
    after = jitgate_objects(api)
    assert sorted(after) == sorted(before)
    # The user's request keeps every field (new ones take their defaults); the chart's policy
    # is what today's chart renders.
    kept = after["AccessRequest/before-upgrade"]["spec"]
    assert {k: v for k, v in kept.items() if k in request["spec"]} == request["spec"]
    policy = render.find(today, "AccessPolicy", "default")
    assert after["AccessPolicy/default"]["spec"] == policy["spec"]
    for key in before:
        rewritten = api.kubectl(
            "admin", "replace", "--dry-run=server", "-f", "-", input=json.dumps(after[key])
        )
        assert rewritten.returncode == 0, f"{key} no longer validates: {rewritten.stderr}"

    # Every webhook is where today's chart puts it, trusting the CA that was kept.
    expected = {}
    for obj in today:
        if obj["kind"].lower() in WEBHOOK_KINDS:
            for hook in obj["webhooks"]:
                expected[f"{obj['kind']}/{hook['name']}"] = hook
    live = live_webhooks(api)
    assert sorted(live) == sorted(expected)
    ca = first[TLS_SECRET]["data"]["ca.crt"]
    for key, hook in expected.items():
        assert live[key]["clientConfig"] == {**hook["clientConfig"], "caBundle": ca}, key
        for field in ("rules", "namespaceSelector", "failurePolicy", "matchConditions"):
            assert live[key].get(field) == hook.get(field), f"{key}: {field}"

    cfg.uninstall(RELEASE, timeout=TIMEOUT_S)


def statefulsets(api: KubeAPIServer) -> dict[str, dict[str, Any]]:
    out = api.kubectl("admin", "get", "statefulsets", "-n", NAMESPACE, "-o", "json", check=True)
    return {s["metadata"]["name"]: s for s in json.loads(out.stdout)["items"]}


def test_switching_the_audit_sink_is_refused_up_front_and_its_steps_work(
    release_cluster: HelmCluster,
) -> None:
    """A StatefulSet's volumeClaimTemplates never change: the chart says so before Helm
    applies anything (the release stays deployed), and the steps it gives work."""
    api, cfg = release_cluster.api, release_cluster.helm
    chart = str(render.CHART_DIR)
    installed = cfg.install(
        chart, RELEASE, {}, namespace=NAMESPACE, create_namespace=True, timeout=TIMEOUT_S
    )
    assert (installed["status"], installed["revision"]) == ("deployed", 1)
    postgres = {"audit": {"sink": "postgres", "postgres": {"existingSecret": "jitgate-audit-db"}}}
    for values, change in (
        (postgres, "audit.sink file -> postgres"),
        ({"audit": {"file": {"size": "20Gi"}}}, 'the audit volume 5Gi, storageClassName ""'),
    ):
        with pytest.raises(helm.HelmReleaseError, match="refused before changing anything") as no:
            cfg.upgrade(chart, RELEASE, values, namespace=NAMESPACE, timeout=TIMEOUT_S)
        message = str(no.value)
        assert change in message and "cannot change in place" in message
        assert (
            f"kubectl -n {NAMESPACE} delete statefulset jitgate-webhook jitgate-operator "
            "--cascade=orphan" in message
        )
        current = cfg.status(RELEASE)
        assert (current["status"], current["revision"]) == ("deployed", 1)
    assert all(s["spec"].get("volumeClaimTemplates") for s in statefulsets(api).values())

    # The steps: (the logs are verified and kept;) the StatefulSets go, their pods stay; the
    # same upgrade again. This API server runs no garbage collector, so the test plays its
    # part of an orphaning delete: it drops the `orphan` finalizer once the pods are let go.
    sts = ("statefulset", "jitgate-webhook", "jitgate-operator")
    api.kubectl(
        "admin", "-n", NAMESPACE, "delete", *sts, "--cascade=orphan", "--wait=false", check=True
    )  # fmt: skip
    api.kubectl(
        "admin", "-n", NAMESPACE, "patch", *sts, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}', check=True,
    )  # fmt: skip
    assert statefulsets(api) == {}
    upgraded = cfg.upgrade(chart, RELEASE, postgres, namespace=NAMESPACE, timeout=TIMEOUT_S)
    assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2)
    for name, statefulset in statefulsets(api).items():
        assert "volumeClaimTemplates" not in statefulset["spec"], name
        (container,) = statefulset["spec"]["template"]["spec"]["containers"]
        audit = next(e for e in container["env"] if e["name"] == "JITGATE_AUDIT")
        assert audit["valueFrom"]["secretKeyRef"]["name"] == "jitgate-audit-db"
    # And back to files is refused the same way. (Values are given: with none at all, Helm
    # reuses the release's.)
    files = {"audit": {"sink": "file"}}
    with pytest.raises(helm.HelmReleaseError, match=r"audit\.sink postgres -> file"):
        cfg.upgrade(chart, RELEASE, files, namespace=NAMESPACE, timeout=TIMEOUT_S)
    assert cfg.status(RELEASE)["status"] == "deployed"
    cfg.uninstall(RELEASE, timeout=TIMEOUT_S)


def test_upgrade_keeps_the_webhook_certificate_and_the_audit_key(
    release_cluster: HelmCluster,
) -> None:
    api, cfg = release_cluster.api, release_cluster.helm
    chart = str(render.CHART_DIR)
    installed = cfg.install(
        chart, RELEASE, {}, namespace=NAMESPACE, create_namespace=True, timeout=TIMEOUT_S
    )
    assert (installed["status"], installed["revision"]) == ("deployed", 1)
    first = secrets(api, TLS_SECRET, KEY_SECRET)
    assert set(first) == {TLS_SECRET, KEY_SECRET}
    tls = first[TLS_SECRET]["data"]
    assert ca_bundles(api) == {tls["ca.crt"]}  # the webhooks trust the CA that signed the cert
    assert len(base64.b64decode(first[KEY_SECRET]["data"]["hmac.key"])) == 64

    upgraded = cfg.upgrade(chart, RELEASE, {}, namespace=NAMESPACE, timeout=TIMEOUT_S)
    assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2)
    second = secrets(api, TLS_SECRET, KEY_SECRET)
    for name in (TLS_SECRET, KEY_SECRET):
        assert second[name]["data"] == first[name]["data"], f"{name} changed on upgrade"
    assert ca_bundles(api) == {tls["ca.crt"]}
    # `lookup` is what kept them: an offline render makes new ones every time.
    offline = {
        o["metadata"]["name"]: o
        for o in render.render_chart({}, namespace=NAMESPACE, fresh=True)
        if o["kind"] == "Secret"
    }
    assert offline[TLS_SECRET]["data"]["ca.crt"] != tls["ca.crt"]
    assert offline[KEY_SECRET]["data"] != first[KEY_SECRET]["data"]

    # The audit key outlives the release (old logs stay verifiable) and is taken up again.
    cfg.uninstall(RELEASE, timeout=TIMEOUT_S)
    left = secrets(api, TLS_SECRET, KEY_SECRET)
    assert set(left) == {KEY_SECRET}
    reinstalled = cfg.install(chart, RELEASE, {}, namespace=NAMESPACE, timeout=TIMEOUT_S)
    assert reinstalled["status"] == "deployed"
    again = secrets(api, TLS_SECRET, KEY_SECRET)
    assert again[KEY_SECRET]["data"] == first[KEY_SECRET]["data"]
    assert again[TLS_SECRET]["data"]["ca.crt"] != tls["ca.crt"]  # a new one, since it was gone
