"""Only the API server is heard: the tier's API server presents a client certificate to
webhooks (--admission-control-config-file) and the webhook runs with --client-ca. A review
POSTed to the webhook directly, with no client certificate or one from another CA, gets no
decision and leaves no record."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from e2e import processes
from support import reviews

from jitgate.devtools.devcerts import DevCA

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]

HOOK = 'admission webhook "connect.actions.jitgate.dev" denied the request'


def _post_review(c: Any, body: dict[str, Any], certificate: tuple[Path, Path] | None) -> Any:
    """POST to the webhook as someone other than the API server: (status, body) or the error."""
    context = ssl.create_default_context(cafile=str(c.api.ca_file))
    if certificate is not None:
        context.load_cert_chain(*certificate)
    request = urllib.request.Request(
        f"{c.webhook_url}/validate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (OSError, urllib.error.URLError) as error:
        return error


def test_the_api_servers_reviews_are_decided_and_recorded_as_verified(jitgate_cluster: Any) -> None:
    c = jitgate_cluster

    denied = c.exec("carol", "prod", c.probe_pod, "cat", "/etc/shadow")

    assert HOOK in denied.stderr
    # kubectl tries a WebSocket first, then SPDY: the API server asks twice.
    records = [
        r
        for r in c.records("webhook", "--user", "carol", "--type", "action.denied")
        if r["action"].get("command") == ["cat", "/etc/shadow"]
    ]
    assert records
    assert {r["caller"] for r in records} == {"verified"}


def test_a_review_from_anyone_else_gets_no_decision_and_no_record(
    jitgate_cluster: Any, tmp_path: Path
) -> None:
    c = jitgate_cluster
    forged = reviews.exec_review(
        c.probe_pod, user="bob", groups=["sre"], command=["rm", "-rf", "/"]
    )
    stranger = DevCA(tmp_path, "someone else's CA").issue(
        "kube-apiserver", server=False, client=True, dns=(), ips=()
    )
    before = c.records("webhook")

    without = _post_review(c, forged, None)
    foreign = _post_review(c, forged, stranger)

    assert without == (
        403,
        {"error": "Only the API server may ask for decisions: present its client certificate."},
    )
    assert isinstance(foreign, OSError | urllib.error.URLError), foreign
    assert c.records("webhook") == before
    metrics = processes.https_get(f"{c.webhook_url}/metrics", c.api.ca_file).body
    for reason in ("no-client-certificate", "untrusted-client-certificate"):
        assert f'jitgate_webhook_refused_callers_total{{reason="{reason}"}}' in metrics
    c.assert_audit_logs_verify()
