"""`--apiserver-traces`: the API server's trace id says which user request a review belongs to,
so its several tries of one request (a contended scale, a delete whose cached copy was stale)
are one record and one use, and two requests are never one.

The reviews are posted over the webhook's real HTTPS port with a `traceparent` header, as a
kube-apiserver with a tracing configuration sends them (tests/apiserver: the real one).
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from typing import Any

import httpx
import pytest
from jitgate.webhook.config import WebhookConfig
from jitgate.webhook.memo import DecisionMemo
from jitgate.webhook.traces import trace_id, trace_in
from support.admission import GRANTS, add_grant, grant_uses

SCALE_WEB = {"verb": "scale", "resource": "deployments.apps", "names": ["web"]}


@pytest.fixture
def webhook_config(webhook_config: WebhookConfig) -> WebhookConfig:
    return dataclasses.replace(webhook_config, apiserver_traces=True)


def traceparent(trace: str | None = None) -> str:
    """A header value as the API server writes it: the request's trace id, a new span id."""
    return f"00-{trace or secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def retried(review: dict[str, Any], *, old: int) -> dict[str, Any]:
    """The API server's next try of `review` after a conflict: a uid of its own, decided on
    the stored object, whose count another client changed."""
    request = {**review["request"], "uid": str(uuid.uuid4())}
    request["oldObject"] = {**request["oldObject"], "spec": {"replicas": old}}
    return {**review, "request": request}


@pytest.fixture
def send(client: httpx.AsyncClient) -> Any:
    async def call(review: dict[str, Any], header: str | None) -> dict[str, Any]:
        headers = {"traceparent": header} if header is not None else {}
        response = await client.post("/validate", json=review, headers=headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()["response"]
        assert answer["uid"] == review["request"]["uid"]
        return answer

    return call


async def test_the_tries_of_one_request_are_one_record_and_a_new_request_another(
    cluster: Any, webhook: Any, send: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    first = reviews.scale(old=3, new=5)
    trace = secrets.token_hex(16)
    answers = [await send(first, traceparent(trace))]
    # Two more tries after conflicts: other counts each time, each with a span of its own.
    for old in (4, 2):
        answers.append(await send(retried(first, old=old), traceparent(trace)))
    assert all(answer["allowed"] for answer in answers)
    [record] = audit_log()
    assert record["admissionUID"] == first["request"]["uid"]
    assert record["action"]["replicas"] == {"old": 3, "new": 5}
    # Every try carries the one record's annotations: the API server's event names it.
    assert len({str(answer["auditAnnotations"]) for answer in answers}) == 1
    repeats = webhook.service.metrics.registry.get_sample_value(
        "jitgate_webhook_repeated_reviews_total", {"action": "scale"}
    )
    assert repeats == 2
    # The same change asked for again is another request: another trace, another record.
    assert (await send(retried(first, old=4), traceparent()))["allowed"]
    assert len(audit_log()) == 2


async def test_one_trace_is_still_another_request_for_another_user_change_or_dry_run(
    cluster: Any, webhook: Any, send: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    await add_grant(cluster, webhook, reviews, name="carols-scale", user="carol",
                    actions=[SCALE_WEB])  # fmt: skip
    header = traceparent()
    first = reviews.scale(old=3, new=5)
    other_count = reviews.scale(old=3, new=6)
    dry_run = reviews.scale(old=3, new=5, dry_run=True)
    other_user = reviews.scale(old=3, new=5, user="carol")
    for review in (first, other_count, dry_run, other_user):
        assert (await send(review, header))["allowed"]
    assert [(r["actor"]["user"], r["action"]["replicas"]["new"], r["dryRun"])
            for r in audit_log()] == [
        ("alice", 5, False), ("alice", 6, False), ("alice", 5, True), ("carol", 5, False),
    ]  # fmt: skip


async def test_a_try_is_decided_afresh_and_a_changed_decision_recorded(
    cluster: Any, webhook: Any, send: Any, reviews: Any, audit_log: Any
) -> None:
    grant = await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    first = reviews.scale(old=3, new=5)
    header = traceparent()
    assert (await send(first, header))["allowed"]
    cluster.delete(GRANTS, "prod", grant["metadata"]["name"])
    await reviews.until(webhook, lambda cache: not cache.grants.for_user("prod", "alice"))
    # The Grant went between two tries: the next try is refused, and the refusal recorded.
    assert not (await send(retried(first, old=4), header))["allowed"]
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.denied"]


ZEROS = f"00-{'0' * 32}-{secrets.token_hex(8)}-00"


@pytest.mark.parametrize(
    ("groups", "header"),
    [
        # The API server continues the trace a client in system:masters or
        # system:monitoring sends: two of its requests may carry one trace id.
        (["system:masters"], traceparent()),
        (["system:monitoring"], traceparent()),
        ([], ZEROS),  # not a trace id
        ([], "00-not-a-trace"),
        ([], None),
    ],
    ids=["system:masters", "system:monitoring", "zero-trace-id", "malformed", "no-header"],
)
async def test_tries_whose_trace_names_no_request_are_each_recorded(
    cluster: Any,
    webhook: Any,
    send: Any,
    reviews: Any,
    audit_log: Any,
    groups: list[str],
    header: str | None,
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    first = reviews.scale(old=3, new=5, groups=groups)
    assert (await send(first, header))["allowed"]
    assert (await send(retried(first, old=4), header))["allowed"]
    assert len(audit_log()) == 2


async def one_time_scale(
    cluster: Any, webhook: Any, send: Any, reviews: Any
) -> tuple[dict[str, Any], str]:
    """A one-time Grant's use by a scale's first try: that review and its traceparent."""
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB], max_uses=1)
    first = reviews.scale(old=3, new=5)
    header = traceparent()
    assert (await send(first, header))["allowed"]
    assert grant_uses(cluster) == 1
    return first, header


async def test_a_one_time_grant_is_used_once_by_the_tries_of_one_request(
    cluster: Any, webhook: Any, send: Any, reviews: Any, audit_log: Any
) -> None:
    first, header = await one_time_scale(cluster, webhook, send, reviews)
    # Counted again, this try would find the grant used up, and fail the request.
    assert (await send(retried(first, old=4), header))["allowed"]
    assert grant_uses(cluster) == 1
    again = await send(retried(first, old=4), traceparent())
    assert not again["allowed"]
    assert "was for 1 use and has been used" in again["status"]["message"]
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.denied"]


async def test_a_try_another_replica_decides_costs_a_use_of_its_own(
    cluster: Any, webhook: Any, send: Any, reviews: Any, audit_log: Any
) -> None:
    # The API server may send a later try to another webhook replica (a memo of its own).
    # It counts a use of its own: a trace id is never taken as proof that a use was counted
    # (one wrongly trusted would otherwise let its sender use a used-up grant again).
    first, header = await one_time_scale(cluster, webhook, send, reviews)
    webhook.service.memo = DecisionMemo()  # as another replica knows nothing of it
    assert not (await send(retried(first, old=4), header))["allowed"]
    assert grant_uses(cluster) == 1
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.denied"]


async def test_the_trace_is_read_on_the_asgi_path_too(
    cluster: Any, webhook: Any, client: httpx.AsyncClient, reviews: Any, audit_log: Any
) -> None:
    # A request the protocol hands to ASGI (here: `Expect: 100-continue`) is answered the
    # same way, its headers read from the ASGI scope.
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    first = reviews.scale(old=3, new=5)
    headers = {"traceparent": traceparent(), "expect": "100-continue"}
    for review in (first, retried(first, old=4)):
        response = await client.post("/validate", json=review, headers=headers)
        assert response.json()["response"]["allowed"] is True
    assert len(audit_log()) == 1


def test_a_traceparent_is_parsed_as_the_w3c_trace_context_says() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id(f"00-{trace}-00f067aa0ba902b7-01".encode()) == trace
    assert trace_id(f" 00-{trace}-00f067aa0ba902b7-00\t".encode()) == trace
    for value in (
        f"01-{trace}-00f067aa0ba902b7-01",  # a version this parser does not know
        f"00-{trace.upper()}-00f067aa0ba902b7-01",  # upper case
        f"00-{trace}-0000000000000000-01",  # no parent
        f"00-{trace}-00f067aa0ba902b7-01-extra",
        f"00-{trace}-00f067aa0ba902b7",
        "",
    ):
        assert trace_id(value.encode()) is None, value
    one = (b"traceparent", f"00-{trace}-00f067aa0ba902b7-01".encode())
    assert trace_in([(b"content-type", b"application/json"), one]) == trace
    assert trace_in([one, one]) is None  # two: which one?
    assert trace_in([]) is None
