"""Only the API server is heard (--client-ca): a caller without a client certificate from the
client CA gets no decision and leaves no audit record; records say whether the caller was
verified."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jitgate.webhook.callers import Refusals
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.server import RunningWebhook, running
from jitgate.webhook.watch import Backoff

from jitgate.devtools.devcerts import DevCA

REFUSED = {"error": "Only the API server may ask for decisions: present its client certificate."}


@dataclasses.dataclass(frozen=True)
class Callers:
    """The client CA the webhook trusts, the API server's certificate from it, and one from
    a CA it does not trust."""

    ca_file: Path
    apiserver: tuple[Path, Path]
    stranger: tuple[Path, Path]


@pytest.fixture
def callers(tmp_path: Path) -> Callers:
    trusted = DevCA(tmp_path / "clients", "API server client CA")
    other = DevCA(tmp_path / "others", "someone else's CA")
    return Callers(
        trusted.cert_file,
        trusted.issue("kube-apiserver", server=False, client=True, dns=(), ips=()),
        other.issue("kube-apiserver", server=False, client=True, dns=(), ips=()),
    )


@pytest.fixture
async def guarded(
    cluster: Any, webhook_config: Any, clock: Any, api_client: Any, callers: Callers
) -> AsyncIterator[RunningWebhook]:
    config = dataclasses.replace(webhook_config, client_ca=callers.ca_file)
    async with running(
        config, clock=clock, api_client=api_client, backoff=Backoff(initial=0.02, maximum=0.2)
    ) as hook:
        assert await asyncio.to_thread(hook.wait_synced, 10), "the grant cache never synced"
        yield hook


def _client(url: str, pki: Any, certificate: tuple[Path, Path] | None) -> httpx.AsyncClient:
    context: ssl.SSLContext = pki.client_context()
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return httpx.AsyncClient(base_url=url, verify=context, timeout=10)


async def _refused(url: str, pki: Any) -> str:
    async with _client(url, pki, None) as anyone:
        return (await anyone.get("/metrics")).text


async def test_the_api_servers_certificate_gets_decisions_and_verified_records(
    guarded: RunningWebhook, pki: Any, callers: Callers, reviews: Any, audit_log: Any
) -> None:
    async with _client(guarded.url, pki, callers.apiserver) as apiserver:
        response = await apiserver.post("/validate", json=reviews.exec(command=["sh"]))

    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is False
    (record,) = audit_log()
    assert record["type"] == "action.denied"
    assert record["caller"] == "verified"
    assert record["admissionUID"] == answer["uid"]


async def test_no_client_certificate_gets_no_decision_and_no_record(
    guarded: RunningWebhook, pki: Any, reviews: Any, audit_log: Any
) -> None:
    before = audit_log()
    async with _client(guarded.url, pki, None) as anyone:
        for path in ("/validate", "/mutate"):
            response = await anyone.post(path, json=reviews.exec(command=["rm", "-rf", "/"]))
            assert (response.status_code, response.json()) == (403, REFUSED)
        # The kubelet's probes and Prometheus present no certificate and are still answered.
        assert (await anyone.get("/healthz")).text == "ok\n"
        assert (await anyone.get("/readyz")).status_code == 200
        metrics = (await anyone.get("/metrics")).text

    assert audit_log() == before
    assert 'jitgate_webhook_refused_callers_total{reason="no-client-certificate"} 2.0' in metrics
    assert 'jitgate_webhook_decisions_total{action="exec"' not in metrics


async def test_a_certificate_from_another_ca_fails_the_handshake(
    guarded: RunningWebhook, pki: Any, callers: Callers, reviews: Any, audit_log: Any
) -> None:
    before = audit_log()
    async with _client(guarded.url, pki, callers.stranger) as stranger:
        with pytest.raises(httpx.HTTPError):
            await stranger.post("/validate", json=reviews.exec(command=["sh"]))

    assert audit_log() == before
    metrics = await _refused(guarded.url, pki)
    assert (
        'jitgate_webhook_refused_callers_total{reason="untrusted-client-certificate"} 1.0'
        in metrics
    )


async def test_a_rotated_serving_certificate_keeps_checking_callers(
    guarded: RunningWebhook, pki: Any, callers: Callers, reviews: Any
) -> None:
    pki.issue()
    async with _client(guarded.url, pki, callers.apiserver) as apiserver:
        assert (await apiserver.post("/validate", json=reviews.exec())).status_code == 200
    async with _client(guarded.url, pki, callers.stranger) as stranger:
        with pytest.raises(httpx.HTTPError):
            await stranger.get("/healthz")
    async with _client(guarded.url, pki, None) as anyone:
        assert (await anyone.post("/validate", json=reviews.exec())).status_code == 403
        assert "jitgate_webhook_tls_reloads_total 1.0" in (await anyone.get("/metrics")).text


async def test_without_a_client_ca_every_admission_record_says_the_caller_was_not_verified(
    webhook: RunningWebhook, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await validate(reviews.exec(command=["sh"]))
    await validate(reviews.exec(namespace="prod", command=["rm", "-rf", "/"]))

    admissions = audit_log()
    assert len(admissions) == 2
    assert {r["caller"] for r in admissions} == {"unverified"}


def test_refusals_are_logged_at_most_once_a_minute_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    refusals = Refusals(Metrics(), monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="jitgate.webhook.callers"):
        for _ in range(1000):
            refusals.refuse("no-client-certificate", "POST /validate")
        refusals.refuse("untrusted-client-certificate", "unable to get local issuer certificate")
        now[0] = 60.0
        refusals.refuse("no-client-certificate", "POST /mutate")

    assert [record.getMessage() for record in caplog.records] == [
        "Refused a caller: a review arrived without a client certificate: POST /validate; "
        "no decision, no audit record.",
        "Refused a caller: a client certificate not signed by the client CA was refused: "
        "unable to get local issuer certificate; no decision, no audit record.",
        "Refused a caller: a review arrived without a client certificate: POST /mutate; "
        "no decision, no audit record (1000 since the last line).",
    ]


async def test_the_api_servers_reviews_answered_directly_match_the_asgi_path(
    guarded: RunningWebhook, pki: Any, callers: Callers, reviews: Any, audit_log: Any
) -> None:
    # A verified connection's reviews skip ASGI (`TLSScopeProtocol`); HTTP/1.0 still takes it.
    context = pki.client_context()
    context.load_cert_chain(*callers.apiserver)
    host, port = guarded.url.removeprefix("https://").rsplit(":", 1)
    answers = []
    for uid, version in (("direct", "1.1"), ("through-asgi", "1.0")):
        # A command of its own: the same refusal again would be taken for a retry and not
        # recorded again (`jitgate.webhook.memo`).
        review = reviews.exec(command=["sh", uid])
        review["request"]["uid"] = uid
        body = json.dumps(review).encode()
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        try:
            writer.write(
                f"POST /validate HTTP/{version}\r\nHost: webhook\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            answer = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        head, _, answered = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n", 1)[0].endswith(b"200 OK")
        answers.append(json.loads(answered)["response"])

    def alike(value: Any) -> Any:
        return json.loads(json.dumps(value).replace("through-asgi", "direct"))

    direct, through_asgi = answers
    assert direct == alike(through_asgi)
    volatile = {"seq", "time", "hash", "prev", "leaf", "mac"}
    first, second = ({k: v for k, v in r.items() if k not in volatile} for r in audit_log())
    assert first == alike(second)
    assert first["caller"] == "verified"
