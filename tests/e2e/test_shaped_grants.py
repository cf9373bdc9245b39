"""One-time grants, scheduled starts and extensions on the real API server.

The race: two webhook replicas (the tier's own and a second process with the same identity)
each get the same exec review for one `maxUses: 1` grant at the same moment, 1,000 times; each
counts the use on the Grant through the real API server (RBAC: the webhook's account may update
`grants/status`; the grants webhook checks the write), and exactly one of the two is allowed
every time. The reviews are posted to the replicas directly, with the API server's own webhook
client certificate, since the API server calls only one of them.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e import processes
from e2e.cluster import JitCluster, denied_by
from support import objects

from jitgate.core.clock import SYSTEM_CLOCK, format_time
from jitgate.devtools.admission_reviews import exec_review

pytestmark = [pytest.mark.apiserver]

RACES = 1_000  # bounded; each race is two reviews at once
CONCURRENT = 4  # races at a time
GRANTS = "/apis/jitgate.dev/v1alpha1/namespaces/prod/grants"
CACHE_WAIT_S = 60.0


def _client(c: JitCluster, url: str) -> httpx.Client:
    """Posts reviews as the API server does: its webhook client certificate."""
    assert c.api.webhook_client_ca is not None, "the tier runs with webhook client auth"
    certs = c.api.webhook_client_ca.parent
    cert = certs / "kube-apiserver-webhook-client.crt"
    key = certs / "kube-apiserver-webhook-client.key"
    context = ssl.create_default_context(cafile=str(c.api.ca_file))
    context.load_cert_chain(cert, key)
    return httpx.Client(base_url=url, verify=context, timeout=15)


def _cached_grants(client: httpx.Client) -> int:
    text = client.get("/metrics").text
    found = re.search(r'^jitgate_webhook_cache_objects\{kind="grants"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


@pytest.fixture
def replicas(jitgate_cluster: JitCluster) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    c = jitgate_cluster
    with (
        c.webhook_replica("webhook-1") as second,
        _client(c, c.webhook_url) as a,
        _client(c, second) as b,
    ):
        yield a, b


def test_two_replicas_racing_one_use_allow_exactly_one(
    jitgate_cluster: JitCluster, replicas: tuple[httpx.Client, httpx.Client]
) -> None:
    c = jitgate_cluster
    started = time.monotonic()
    now = SYSTEM_CLOCK.now()

    def create(i: int) -> None:
        grant = objects.grant(
            f"once-{i}",
            user="alice",
            actions=[{"verb": "exec", "names": [f"once-{i}"], "command": ["true"]}],
            not_before=now - dt.timedelta(minutes=1),
            expires_at=now + dt.timedelta(minutes=30),
            request=f"once-{i}",
            approvals=[objects.approval()],
            max_uses=1,
        )
        status, body = c.api.request("POST", GRANTS, who="jitgate-operator", body=grant)
        assert status == 201, body

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(RACES)))
    # Both replicas hold every grant before the races start: each race is then decided by the
    # count alone, not by whether a replica's watch has delivered the grant yet.
    processes.wait_until(
        f"both replicas caching the {RACES} grants",
        lambda: (
            min(_cached_grants(r) for r in replicas) >= RACES,
            str([_cached_grants(r) for r in replicas]),
        ),
        timeout=CACHE_WAIT_S,
        interval=0.2,
        alive=c.processes,
    )
    created = time.monotonic()

    def ask(client: httpx.Client, review: dict[str, Any]) -> bool:
        answer = client.post("/validate", json=review)
        assert answer.status_code == 200, answer.text
        allowed: bool = answer.json()["response"]["allowed"]
        return allowed

    def race(i: int) -> tuple[bool, bool]:
        """The same exec, as two user requests, to the two replicas at once."""
        review = exec_review(
            user="alice", groups=["developers"], namespace="prod", pod=f"once-{i}",
            command=["true"],
        )  # fmt: skip
        again = json.loads(json.dumps(review))
        # Its own uid: one uid sent to two replicas is one API request (the API server trying
        # another replica), which the count rightly allows on both.
        again["request"]["uid"] = str(uuid.uuid4())
        second = seconds.submit(ask, replicas[1], again)
        return ask(replicas[0], review), second.result()

    # Several races at a time (each on its own grant), two reviews each.
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT) as firsts,
        concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT) as seconds,
    ):
        outcomes = list(firsts.map(race, range(RACES)))
    raced = time.monotonic()
    wrong = [(i, pair) for i, pair in enumerate(outcomes) if sum(pair) != 1]
    assert wrong == [], f"{len(wrong)} races did not allow exactly one: {wrong[:10]}"
    wins = sum(a for a, _ in outcomes)
    print(
        f"{RACES} races of two replicas for one use: exactly one allowed each time "
        f"(the tier's replica won {wins}, the second {RACES - wins}); grants created and "
        f"cached in {created - started:.1f} s, raced in {raced - created:.1f} s"
    )
    # Every used grant says so on the API server: one use counted, no more.
    status, listing = c.api.request("GET", GRANTS, who="admin")
    assert status == 200
    counted = [
        (g.get("status") or {}).get("uses")
        for g in listing["items"]
        if g["metadata"]["name"].startswith("once-")
    ]
    assert set(counted) <= {1}, counted  # the operator deletes used-up grants as it goes


def test_a_one_time_grant_allows_one_exec_then_ends(jitgate_cluster: JitCluster) -> None:
    c = jitgate_cluster
    c.run_pods("prod", "one-time")
    asked = c.jit(
        "alice", "request", "exec", "one-time", "-n", "prod", "--max-uses", "1",
        "--for", "5m", "--name", "one-time", "--reason", "INC-7: one look", "--", "true",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    grant = c.approved("one-time")
    first = c.exec("alice", "prod", "one-time", "true")
    assert first.returncode == 0, first.stderr
    second = c.exec("alice", "prod", "one-time", "true")
    assert second.returncode != 0
    assert denied_by("connect") in second.stderr
    # The denial says the grant was used while it exists, or that none is left once the
    # operator has ended it: either way, not a second exec.
    assert f"grant {grant} was for 1 use and has been used" in second.stderr or (
        "holds no live grant" in second.stderr
    ), second.stderr
    ended = c.wait_phase("prod", "one-time", "Expired")
    assert ended["status"]["message"] == f"grant {grant} was used up (1 of 1 use)"
    [allowed] = [
        r for r in c.records("webhook", "--request", "one-time") if r["type"] == "action.allowed"
    ]
    assert (allowed["context"]["use"], allowed["context"]["maxUses"]) == (1, 1)
    assert "grant.exhausted" in [r["type"] for r in c.records("operator", "--grant", grant)]


def test_a_scheduled_start_in_the_past_is_refused_at_creation(jitgate_cluster: JitCluster) -> None:
    proc = jitgate_cluster.jit(
        "alice", "request", "exec", "web-0", "-n", "prod", "--start-at", "2020-01-01T00:00:00Z",
        "--reason", "too late",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "startAt 2020-01-01T00:00:00Z is in the past" in proc.stderr, proc.stderr


def test_a_scheduled_grant_is_issued_early_and_starts_on_time(jitgate_cluster: JitCluster) -> None:
    c = jitgate_cluster
    asked = c.jit(
        "alice", "request", "exec", "later-0", "-n", "prod", "--start-at", "+1h",
        "--for", "5m", "--name", "later", "--reason", "CHG-1: tonight",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    grant = c.get("grant", c.approved("later"), "prod")
    assert grant is not None
    start = grant["spec"]["notBefore"]
    assert start > format_time(SYSTEM_CLOCK.now() + dt.timedelta(minutes=59))
    c.create_pods("prod", "later-0")
    denied = c.exec("alice", "prod", "later-0", "true")
    assert f"is not valid before {start}" in denied.stderr, denied.stderr


def test_an_extension_continues_the_grant_and_show_shows_the_chain(
    jitgate_cluster: JitCluster,
) -> None:
    c = jitgate_cluster
    first = c.granted("exec", "extend-0", "--reason", "INC-9: look", name="extend-me")
    extended = c.jit(
        "alice", "extend", "extend-me", "-n", "prod", "--by", "5m", "--reason", "INC-9: more",
    )  # fmt: skip
    assert extended.returncode == 0, extended.stderr
    name = extended.stdout.split()[0].split("/")[1]
    second = c.approved(name)
    before, after = (c.get("grant", g, "prod") for g in (first, second))
    assert before is not None and after is not None
    # The extension's grant is live from its approval, before the first one ends: no gap.
    assert after["spec"]["notBefore"] <= before["spec"]["expiresAt"]
    assert after["spec"]["windowStart"] == before["spec"]["notBefore"]
    shown = c.jit("alice", "show", name, "-n", "prod")
    assert f"extend-me → {name} (this)" in shown.stdout, shown.stdout
    # Different actions are refused at creation, with the reason.
    other = objects.access_request(
        "extend-other", "prod", actions=[{"verb": "exec", "names": ["web-9"]}],
        extends={"name": "extend-me"}, duration="5m", reason="other",
    )  # fmt: skip
    refused = c.kubectl("alice", "create", "-f", "-", input=json.dumps(other))
    assert refused.returncode != 0
    assert "an extension asks for exactly the actions of extend-me" in refused.stderr
