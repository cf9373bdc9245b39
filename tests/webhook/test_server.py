"""The server around the decisions: health, readiness, metrics, the watch's recovery, TLS
rotation, the audit log failing, and malformed input."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import pytest
from cryptography import x509
from jitgate.webhook.server import (
    RunningWebhook,
    StartupError,
    kubernetes_configuration,
    run_webhook_in_thread,
    running,
)
from jitgate.webhook.watch import Backoff
from support.admission import add_grant

from jitgate.core.clock import ManualClock
from jitgate.devtools.emulator import KubeEmulator, run_emulator
from jitgate.kube import load_credentials

GRANTS = "grants.jitgate.dev"
CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
NOT_READY = "jitgate is not ready: grant cache not synced"


# ------------------------------------------------------------------ health and metrics


async def test_health_readiness_and_metrics(
    cluster: Any, webhook: Any, client: httpx.AsyncClient, validate: Any, reviews: Any
) -> None:
    assert (await client.get("/healthz")).text == "ok\n"
    assert (await client.get("/readyz")).status_code == 200
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec())).allowed
    assert not (await validate(reviews.exec(command=["sh"]))).allowed
    assert (await validate(reviews.exec(namespace="dev"))).allowed
    text = (await client.get("/metrics")).text
    assert 'jitgate_webhook_decisions_total{action="exec",result="allowed"} 1.0' in text
    assert 'jitgate_webhook_decisions_total{action="exec",result="denied"} 1.0' in text
    assert 'jitgate_webhook_decision_seconds_bucket{endpoint="validate",le="0.0001"}' in text
    assert 'jitgate_webhook_decision_seconds_count{endpoint="validate"} 3.0' in text
    assert "jitgate_webhook_audit_append_seconds_count 2.0" in text
    assert 'jitgate_webhook_cache_objects{kind="grants"} 1.0' in text
    assert 'jitgate_webhook_cache_objects{kind="accesspolicies"} 1.0' in text
    assert 'jitgate_webhook_cache_synced{kind="namespaces"} 1.0' in text
    assert "jitgate_webhook_ready 1.0" in text


async def test_each_app_has_its_own_registry(
    webhook: Any, webhook_config: Any, api_client: Any
) -> None:
    config = dataclasses.replace(webhook_config, writer_id="webhook-test-2")
    async with running(config, api_client=api_client) as second:
        assert second.service.metrics.registry is not webhook.service.metrics.registry


async def test_a_webhook_that_cannot_start_says_why(
    webhook: Any, webhook_config: Any, api_client: Any
) -> None:
    with pytest.raises(StartupError, match="audit writer webhook-test is already writing to"):
        async with running(webhook_config, api_client=api_client):
            pass


# ------------------------------------------------------------------ not ready


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable() -> Iterator[tuple[int, kubernetes.client.ApiClient]]:
    """A client for an API server that is not listening (yet) on a free port."""
    port = free_port()
    config = kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}")
    config.retries = 0
    client = kubernetes.client.ApiClient(config)
    yield port, client
    client.close()


@contextlib.asynccontextmanager
async def started(
    config: Any, api: Any, clock: Any, pki: Any
) -> AsyncIterator[tuple[RunningWebhook, httpx.AsyncClient]]:
    async with (
        running(config, api_client=api, clock=clock, backoff=Backoff(0.02, 0.1)) as handle,
        httpx.AsyncClient(base_url=handle.url, verify=pki.client_context()) as http,
    ):
        yield handle, http


async def test_not_ready_until_synced_denies_protected_actions_then_recovers(
    unreachable: Any, webhook_config: Any, clock: Any, pki: Any, reviews: Any, audit_dir: Path
) -> None:
    port, api = unreachable
    async with started(webhook_config, api, clock, pki) as (handle, http):
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.text.startswith(NOT_READY)
        answer = (await http.post("/validate", json=reviews.exec())).json()["response"]
        assert answer["allowed"] is False and answer["status"]["code"] == 403
        assert answer["status"]["message"] == f"{NOT_READY}; retry in a moment"
        # Exempt callers do not need the cache; jitgate's own kinds that need a policy do.
        node = await http.post(
            "/validate", json=reviews.exec(user="system:node:w1", groups=["system:nodes"])
        )
        assert node.json()["response"]["allowed"] is True
        # An approval needs the policy cache, and so does creating a request (it is checked
        # against the policies that would govern it).
        stored = reviews.access_request()
        stored["spec"]["requester"] = {"user": "alice", "groups": ["system:authenticated"]}
        stored["status"] = {"phase": "Pending", "policy": "production"}
        approved = json.loads(json.dumps(stored))
        approved["status"]["approvals"] = [{"decision": "Approve"}]
        approval = reviews.ar("UPDATE", approved, stored, sub_resource="status", user="bob")
        stamped = await http.post("/mutate", json=approval)
        assert stamped.json()["response"]["allowed"] is True
        refused = (await http.post("/validate", json=approval)).json()["response"]
        assert refused["allowed"] is False
        assert refused["status"]["message"] == f"{NOT_READY}; retry in a moment"
        created = (await http.post("/validate", json=reviews.ar("CREATE", stored))).json()
        assert created["response"]["allowed"] is False
        assert created["response"]["status"]["message"] == f"{NOT_READY}; retry in a moment"
        metrics = (await http.get("/metrics")).text
        assert "jitgate_webhook_ready 0.0" in metrics
        assert 'jitgate_webhook_watch_errors_total{kind="grants"}' in metrics
        # The API server comes up where the client looks for it: the watch reconnects.
        emulator = KubeEmulator(keep_alive=False)
        crds = sorted(CRDS_DIR.glob("*.yaml"))
        async with run_emulator(port=port, emulator=emulator, crds=crds) as served:
            cluster = reviews.cluster(served)
            cluster.namespace("prod", {"jitgate.dev/protected": "true"})
            cluster.create("accesspolicies.jitgate.dev", reviews.policy())
            cluster.create(GRANTS, reviews.grant(), "prod")
            assert await asyncio.to_thread(handle.wait_synced, 10)
            await reviews.until(handle, lambda cache: len(cache.grants) == 1)
            assert (await http.get("/readyz")).status_code == 200
            answer = (await http.post("/validate", json=reviews.exec())).json()["response"]
            assert answer["allowed"] is True
    types = [r["type"] for r in _records(audit_dir)]
    # The exec, the approval and the new request refused while not ready; the exec allowed.
    assert types == ["action.denied", "action.denied", "action.denied", "action.allowed"]


def _records(audit_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for p in sorted(audit_dir.rglob("*.jsonl"))
        for line in p.read_text().splitlines()
        if '"action.' in line
    ]


# ------------------------------------------------------------------ watch recovery


async def test_watch_reconnects_when_the_server_closes_it(
    cluster: Any, webhook: Any, emulator: Any, validate: Any, reviews: Any
) -> None:
    emulator.emulator.close_watches()
    await add_grant(cluster, webhook, reviews)  # arrives on the re-opened watch
    assert (await validate(reviews.exec())).allowed
    lists = webhook.service.metrics.watch_lists.labels("grants")._value.get()
    assert lists == 1  # resumed from its resourceVersion, not listed again


async def test_an_expired_watch_lists_again_and_sees_what_it_missed(
    cluster: Any, webhook: Any, emulator: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec())).allowed
    # While nothing watches, the grant is deleted and the history it would resume from is
    # forgotten: resuming gets 410 Gone, and only a fresh list can show the deletion.
    emulator.emulator.expire_history()
    emulator.emulator.close_watches()
    cluster.delete(GRANTS, "prod", "fix-web-0-x7k2")
    emulator.emulator.expire_history()
    await reviews.until(webhook, lambda cache: len(cache.grants) == 0)
    assert not (await validate(reviews.exec())).allowed
    assert webhook.service.metrics.watch_lists.labels("grants")._value.get() >= 2


def test_backoff_is_bounded_and_jittered() -> None:
    import random

    backoff = Backoff(initial=0.5, maximum=30.0)
    rng = random.Random(7)
    delays = [backoff.delay(attempt, rng) for attempt in range(100)]
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert all(d >= 15.0 for d in delays[10:])  # capped at the maximum, jittered down to half
    assert len(set(delays)) == len(delays)  # no two replicas reconnect in step


# ------------------------------------------------------------------ the audit log failing


def _segment_fd(audit_dir: Path) -> int:
    for entry in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{entry}")
            if target.startswith(str(audit_dir)) and target.endswith(".jsonl"):
                return int(entry)
    raise AssertionError("the audit segment is not open")


def _break_the_volume(audit_dir: Path) -> Path:
    """The disk fills up: the open segment's descriptor now points at /dev/full, so the next
    write fails with ENOSPC as on a full volume; and the segment's path holds a directory, so
    the writer cannot reopen it either. Returns the segment's path."""
    fd = _segment_fd(audit_dir)
    segment = Path(os.readlink(f"/proc/self/fd/{fd}"))
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, fd)
    finally:
        os.close(full)
    segment.rename(segment.with_suffix(".aside"))
    segment.mkdir()
    return segment


def _repair_the_volume(segment: Path) -> None:
    segment.rmdir()
    segment.with_suffix(".aside").rename(segment)


def _types(segment: Path) -> list[str]:
    return [json.loads(line)["type"] for line in segment.read_text().splitlines()]


async def test_an_audit_log_that_cannot_be_written_denies_and_fails_readiness(
    cluster: Any,
    webhook: Any,
    client: httpx.AsyncClient,
    validate: Any,
    reviews: Any,
    audit_dir: Path,
) -> None:
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec())).allowed  # opens the segment file
    segment = _break_the_volume(audit_dir)
    answer = await validate(reviews.exec())
    assert not answer.allowed
    assert answer.message == "jitgate cannot write its audit log, so the action is not allowed"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.text.startswith("jitgate cannot write its audit log: ")
    assert "jitgate_webhook_audit_failures_total" in (await client.get("/metrics")).text
    assert not (await validate(reviews.exec())).allowed  # still failing: still denied
    # The volume is repaired. The readiness probe proves the log writable again (an unready
    # replica gets no admission traffic, so nothing else would).
    _repair_the_volume(segment)
    assert (await client.get("/readyz")).status_code == 200
    assert (await validate(reviews.exec())).allowed
    assert _types(segment)[-3:] == ["audit.recovered", "webhook.auditProbe", "action.allowed"]
    # The chain survived the failure: `jitgate audit verify` finds it intact.
    verify = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "jitgate.cli.jitgate",
            "audit",
            "verify",
            "--audit",
            f"file://{audit_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_an_audit_directory_that_cannot_be_created_stops_the_start(
    webhook_config: Any, api_client: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the audit directory should be")
    config = dataclasses.replace(webhook_config, audit_url=f"file://{blocker}/audit")
    with pytest.raises(StartupError, match=r"^the webhook could not start: "):
        async with running(config, api_client=api_client):
            pass


# ------------------------------------------------------------------ TLS


def _served_certificate(url: str, pki: Any) -> x509.Certificate:
    host, port = url.removeprefix("https://").split(":")
    context = pki.client_context()
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_a_rotated_certificate_is_served_without_a_restart(
    webhook: Any, client: httpx.AsyncClient, pki: Any
) -> None:
    first = await asyncio.to_thread(_served_certificate, webhook.url, pki)
    assert first.serial_number == pki.current.serial_number
    rotated = pki.issue()  # cert-manager writes new files
    second = await asyncio.to_thread(_served_certificate, webhook.url, pki)
    assert second.serial_number == rotated.serial_number != first.serial_number
    assert (await client.get("/healthz")).status_code == 200  # the open connection still works
    assert "jitgate_webhook_tls_reloads_total 1.0" in (await client.get("/metrics")).text


async def test_a_half_written_certificate_keeps_the_old_one(webhook: Any, pki: Any) -> None:
    original = pki.current
    pki.cert_file.write_text("-----BEGIN CERTIFICATE-----\ntruncated")
    served = await asyncio.to_thread(_served_certificate, webhook.url, pki)
    assert served.serial_number == original.serial_number


def _health_on_a_new_connection(
    url: str, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[bytes, str | None, ssl.SSLSession | None, bool | None]:
    """GET /healthz on a connection of its own: the status line, the TLS version, the TLS
    session the client holds afterwards, and whether the handshake resumed `session`."""
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host, session=session) as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: jitgate\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:  # the answer, and any session ticket before it
            answer += tls.recv(65536)
        return answer.split(b"\r\n", 1)[0], tls.version(), tls.session, tls.session_reused


async def test_no_tls_session_ticket_is_issued_so_each_connection_is_a_full_handshake(
    webhook: Any, pki: Any
) -> None:
    context = pki.client_context()
    status, version, session, _ = await asyncio.to_thread(
        _health_on_a_new_connection, webhook.url, context
    )
    assert (status, version) == (b"HTTP/1.1 200 OK", "TLSv1.3")
    assert session is not None and not session.has_ticket
    status, _, _, resumed = await asyncio.to_thread(
        _health_on_a_new_connection, webhook.url, context, session
    )
    assert (status, resumed) == (b"HTTP/1.1 200 OK", False)


async def test_hundreds_of_new_connections_in_a_row_are_each_served(webhook: Any, pki: Any) -> None:
    # As a burst of new API server connections under load arrives, TLS 1.3 and 1.2 alike.
    tls_1_2 = pki.client_context()
    tls_1_2.maximum_version = ssl.TLSVersion.TLSv1_2
    contexts = (pki.client_context(), tls_1_2)

    def connect_in_a_row() -> list[tuple[bytes, str | None]]:
        answers = []
        for number in range(400):
            status, version, _, _ = _health_on_a_new_connection(webhook.url, contexts[number % 2])
            answers.append((status, version))
        return answers

    answers = await asyncio.to_thread(connect_in_a_row)
    assert answers == [(b"HTTP/1.1 200 OK", "TLSv1.3"), (b"HTTP/1.1 200 OK", "TLSv1.2")] * 200


async def test_plain_http_is_not_served(webhook: Any) -> None:
    url = webhook.url.replace("https://", "http://")
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"{url}/healthz")


async def _answers(reader: asyncio.StreamReader, count: int) -> list[tuple[bytes, Any]]:
    """`count` HTTP answers read off a connection: (status line, JSON body)."""
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if line)
        body = await reader.readexactly(int(fields[b"content-length"]))
        answers.append((head.split(b"\r\n", 1)[0], json.loads(body)))
    return answers


async def test_reviews_are_answered_on_one_connection_pipelined_and_over_http_1_0(
    webhook: Any, pki: Any, reviews: Any
) -> None:
    def request(uid: str, *, version: str = "1.1") -> bytes:
        review = reviews.exec()
        review["request"]["uid"] = uid
        body = json.dumps(review).encode()
        # The API server's own query string: the review path is the path without it.
        return (
            f"POST /validate?timeout=10s HTTP/{version}\r\nHost: webhook\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    host, port = webhook.url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=pki.client_context())
    try:
        writer.write(request("first"))
        answers = await _answers(reader, 1)
        writer.write(request("second") + request("third"))  # sent before either is answered
        answers += await _answers(reader, 2)
        writer.write(request("fourth", version="1.0"))
        answers += await _answers(reader, 1)
        closed = await asyncio.wait_for(reader.read(), 10)  # HTTP/1.0: closed once answered
    finally:
        writer.close()
    assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK"] * 4
    uids = [answer["response"]["uid"] for _, answer in answers]
    assert uids == ["first", "second", "third", "fourth"]
    assert not any(answer["response"]["allowed"] for _, answer in answers)  # alice holds none
    assert closed == b""


async def test_a_connection_is_closed_once_idle_for_the_keep_alive_timeout_never_while_used(
    webhook: Any, pki: Any, reviews: Any
) -> None:
    timeout = 0.4
    webhook.server.config.timeout_keep_alive = timeout  # for connections made from now on
    body = json.dumps(reviews.exec()).encode()
    request = (
        f"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = webhook.url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=pki.client_context())
    loop = asyncio.get_running_loop()
    try:
        for _ in range(5):  # used for 2.5 timeouts, never idle for one
            await asyncio.sleep(timeout / 2)
            writer.write(request)
            assert [status for status, _ in await _answers(reader, 1)] == [b"HTTP/1.1 200 OK"]
        answered = loop.time()
        closed = await asyncio.wait_for(reader.read(), 10)
        idle = loop.time() - answered
    finally:
        writer.close()
    assert closed == b""
    assert idle >= timeout * 0.9  # the event loop's timers round to milliseconds


def test_run_webhook_in_thread_serves_synchronous_callers(
    webhook_config: Any, unreachable: Any, pki: Any, reviews: Any
) -> None:
    _, api = unreachable
    with (
        run_webhook_in_thread(webhook_config, api_client=api) as handle,
        httpx.Client(base_url=handle.url, verify=pki.client_context()) as http,
    ):
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 503  # nothing to list from
        answer = http.post("/validate", json=reviews.exec()).json()["response"]
        assert answer["allowed"] is False


def test_the_kubernetes_client_sends_the_current_token(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("a CA")
    (tmp_path / "token").write_text("first-token")
    config = {
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:6443",
                                      "certificate-authority": "ca.crt"}}
        ],
        "users": [{"name": "webhook", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "webhook"}}],
        "current-context": "c",
    }  # fmt: skip
    (tmp_path / "config").write_text(json.dumps(config))
    clock = ManualClock()
    configuration = kubernetes_configuration(load_credentials(tmp_path / "config", clock=clock))
    assert (configuration.host, configuration.ssl_ca_cert, configuration.verify_ssl) == (
        "https://127.0.0.1:6443", str(tmp_path / "ca.crt"), True
    )  # fmt: skip
    # What the client puts in the Authorization header of each call:
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer first-token"
    (tmp_path / "token").write_text("rotated-token")
    clock.advance(dt.timedelta(minutes=1))
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer rotated-token"
