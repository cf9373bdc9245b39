"""The chart as a real Helm release (helm-python-sdk's install/upgrade/uninstall, with
`lookup` reading the live cluster): the webhook's TLS Secret and the audit HMAC key survive
upgrades, and the key survives an uninstall.

A kube-apiserver of its own: the release's webhook configurations point at an in-cluster
Service that nothing serves, and they fail closed, so they must not meet the other tests.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from apiserver.harness import KubeAPIServer
from chart import render
from e2e.cluster import HelmCluster

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

NAMESPACE = "jitgate"  # release_cluster's helm configuration uses it too
RELEASE = "jitgate"
TLS_SECRET = "jitgate-webhook-tls"
KEY_SECRET = "jitgate-audit-key"
TIMEOUT_S = 60


def secrets(api: KubeAPIServer, *names: str) -> dict[str, dict[str, Any]]:
    """name -> Secret, or a missing name when it does not exist."""
    out = api.kubectl("admin", "get", "secrets", "-n", NAMESPACE, "-o", "json", check=True)
    items = json.loads(out.stdout)["items"]
    return {s["metadata"]["name"]: s for s in items if s["metadata"]["name"] in names}


def ca_bundles(api: KubeAPIServer) -> set[str]:
    bundles = set()
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        out = api.kubectl("admin", "get", kind, RELEASE, "-o", "json", check=True).stdout
        bundles |= {hook["clientConfig"]["caBundle"] for hook in json.loads(out)["webhooks"]}
    return bundles


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
