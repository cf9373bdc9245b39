"""A real webhook for tests: uvicorn over HTTPS on 127.0.0.1, fed by a watch on the emulator.

Certificates are generated here (never committed); the audit log is the real file sink in a
temporary directory; time is a `ManualClock` shared by the webhook and the tests.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import pytest
from cryptography import x509
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.config import WebhookConfig
from jitgate.webhook.server import RunningWebhook, running
from jitgate.webhook.watch import Backoff
from support import objects, personas
from support import reviews as reviews_
from support.clocks import NOW

from jitgate.core.clock import ManualClock
from jitgate.core.policy import Exemptions
from jitgate.devtools.devcerts import DevCA
from jitgate.devtools.emulator import EmulatorHandle

# ------------------------------------------------------------------ certificates


class Pki:
    """A throwaway CA and the serving certificate it signs; `issue` rotates it in place."""

    def __init__(self, directory: Path) -> None:
        self.authority = DevCA(directory, "jitgate test CA")
        self.ca_file = self.authority.cert_file
        self.current = self.issue()
        self.cert_file = directory / "tls.crt"
        self.key_file = directory / "tls.key"

    def issue(self) -> x509.Certificate:
        """Write a new serving certificate and key, replacing the files as cert-manager does."""
        cert_file, _ = self.authority.issue("tls")
        self.current = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return self.current

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    return Pki(directory)


# ------------------------------------------------------------------ cluster objects


WEBHOOK_RESOURCES = ["pods", "deployments.apps", "statefulsets.apps", "replicasets.apps", "secrets"]
EXEC_LS = {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}


def policy(name: str = "production", **spec: Any) -> dict[str, Any]:
    """The tier's policy protects namespaces by label, and secrets and every scalable kind."""
    defaults = {"namespaces": objects.BY_PROTECTED_LABEL, "resources": WEBHOOK_RESOURCES}
    return objects.policy(name, **{**defaults, **spec})


def grant(
    name: str = "fix-web-0-x7k2",
    *,
    not_before: dt.datetime = NOW - dt.timedelta(minutes=1),
    actions: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A grant as the operator issues it: already valid, with bob's approval on it."""
    bob = objects.approval(comment="ok", at=NOW - dt.timedelta(minutes=2))
    return objects.grant(
        name, not_before=not_before, actions=actions or [dict(EXEC_LS)], approvals=[bob], **fields
    )


@dataclass
class Cluster:
    """Seeds and changes objects in the emulator (synchronously, in the test's loop)."""

    handle: EmulatorHandle

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        return self.handle.emulator.create_object("namespaces", body)

    def create(
        self, resource: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        return self.handle.emulator.create_object(resource, body, namespace)

    def patch(self, resource: str, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        return self.handle.emulator.patch_object(resource, namespace, name, body)

    def delete(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.handle.emulator.delete_object(resource, namespace, name)


@pytest.fixture
def cluster(emulator: EmulatorHandle) -> Cluster:
    """`prod` (protected by label), `dev` (unprotected) and the `production` policy."""
    seeded = Cluster(emulator)
    seeded.namespace("prod", {"jitgate.dev/protected": "true"})
    seeded.namespace("dev")
    seeded.create("accesspolicies.jitgate.dev", policy())
    return seeded


# ------------------------------------------------------------------ the webhook


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    return tmp_path / "audit"


@pytest.fixture
def webhook_config(pki: Pki, audit_dir: Path) -> WebhookConfig:
    return WebhookConfig(
        host="127.0.0.1",
        port=0,
        tls_cert=pki.cert_file,
        tls_key=pki.key_file,
        audit_url=f"file://{audit_dir}",
        writer_id="webhook-test",
        operator_user=personas.OPERATOR_USER,
        exemptions=Exemptions.with_defaults(users=("flux",), groups=("gitops",)),
        tls_reload_interval=0.0,
    )


@pytest.fixture
def api_client(emulator: EmulatorHandle) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.client.ApiClient(emulator.kubernetes_configuration("jitgate-webhook"))
    yield client
    client.close()


FAST_BACKOFF = Backoff(initial=0.02, maximum=0.2)


@pytest.fixture
async def webhook(
    cluster: Cluster,
    webhook_config: WebhookConfig,
    clock: ManualClock,
    api_client: kubernetes.client.ApiClient,
) -> AsyncIterator[RunningWebhook]:
    """A synced webhook serving over HTTPS."""
    async with running(
        webhook_config, clock=clock, api_client=api_client, backoff=FAST_BACKOFF
    ) as handle:
        assert await asyncio.to_thread(handle.wait_synced, 10), "the grant cache never synced"
        yield handle


@pytest.fixture
async def client(webhook: RunningWebhook, pki: Pki) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=webhook.url, verify=pki.client_context(), timeout=10
    ) as http:
        yield http


@pytest.fixture
def lagging_cache() -> ClusterCache:
    """A synced cache with `prod` and the tier's policy, and none of the Grants created since
    (a watch that has not caught up): for services built without a running webhook."""
    cache = ClusterCache()
    cache.replace(
        "namespaces",
        [{"metadata": {"name": "prod", "labels": {"jitgate.dev/protected": "true"}}}],
    )
    cache.replace("accesspolicies", [policy()])
    cache.replace("accessrequests", [])
    cache.replace("grants", [])
    return cache


async def until(webhook: RunningWebhook, predicate: Any, within: float = 10) -> None:
    """Wait (without sleeping) until the watch has delivered what `predicate` checks."""
    assert await asyncio.to_thread(webhook.cache.wait_until, predicate, within), (
        "the watch never caught up"
    )


# ------------------------------------------------------------------ the tier's builders


def access_request(name: str = "fix-web-0", namespace: str = "prod", **spec: Any) -> dict[str, Any]:
    """A stored AccessRequest, as the API server hands it to the webhook."""
    stored = {
        "uid": objects.REQUEST_UID,
        "resourceVersion": "17",
        "generation": 1,
        "creationTimestamp": "2026-11-21T09:55:00Z",
    }
    return objects.access_request(
        name, namespace, metadata=stored, **{"actions": [dict(EXEC_LS)], "duration": "15m", **spec}
    )


@dataclass(frozen=True)
class Reviews:
    """The tier's builders in one fixture: AdmissionReviews from `support.reviews`, the
    objects the tier seeds, and the wait for its watch."""

    cluster = Cluster

    review = staticmethod(reviews_.review)
    exec = staticmethod(reviews_.exec_review)
    attach = staticmethod(reviews_.attach_review)
    portforward = staticmethod(reviews_.portforward_review)
    delete = staticmethod(reviews_.delete_review)
    deployment = staticmethod(reviews_.deployment)
    scale = staticmethod(reviews_.scale_review)
    deployment_update = staticmethod(reviews_.deployment_update_review)
    autoscaler = staticmethod(reviews_.autoscaler)
    autoscaler_review = staticmethod(reviews_.autoscaler_review)
    namespace_delete = staticmethod(reviews_.namespace_delete_review)
    namespace_update = staticmethod(reviews_.namespace_update_review)
    access_request = staticmethod(access_request)
    ar = staticmethod(reviews_.ar_review)
    grant_write = staticmethod(reviews_.grant_review)
    grant = staticmethod(grant)
    policy = staticmethod(policy)
    until = staticmethod(until)


@pytest.fixture
def reviews() -> type[Reviews]:
    return Reviews


# ------------------------------------------------------------------ answers


@dataclass
class Answer:
    status_code: int
    body: dict[str, Any]

    @property
    def response(self) -> dict[str, Any]:
        return self.body["response"]  # type: ignore[no-any-return]

    @property
    def allowed(self) -> bool:
        return self.response["allowed"] is True

    @property
    def message(self) -> str:
        return self.response.get("status", {}).get("message", "")  # type: ignore[no-any-return]

    @property
    def patch(self) -> list[dict[str, Any]]:
        assert self.response.get("patchType") == "JSONPatch"
        return json.loads(base64.b64decode(self.response["patch"]))  # type: ignore[no-any-return]


async def post(client: httpx.AsyncClient, path: str, body: Any) -> Answer:
    response = await client.post(path, json=body)
    answer = Answer(response.status_code, response.json())
    if response.status_code == 200:
        assert answer.body["apiVersion"] == "admission.k8s.io/v1"
        assert answer.body["kind"] == "AdmissionReview"
        assert answer.response["uid"] == body["request"]["uid"]
        if not answer.allowed:
            assert answer.response["status"]["code"] == 403
    return answer


@pytest.fixture
def validate(client: httpx.AsyncClient) -> Any:
    async def call(body: Any) -> Answer:
        return await post(client, "/validate", body)

    return call


@pytest.fixture
def mutate(client: httpx.AsyncClient) -> Any:
    async def call(body: Any) -> Answer:
        return await post(client, "/mutate", body)

    return call


def audit_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record the webhook wrote, oldest first (segment files are JSON Lines)."""
    records = []
    for path in sorted(audit_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return [r for r in records if r.get("type", "").startswith("action.")]


@pytest.fixture
def audit_log(audit_dir: Path) -> Any:
    return lambda: audit_records(audit_dir)
