"""One decision and one audit record per user request, however often the API server asks."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx

GRANTS = "grants.jitgate.dev"
DEPLOYMENTS = ("apps", "v1", "deployments")
EXEC_LS = {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}
DELETE_WEB = {"verb": "delete", "resource": "deployments.apps", "names": ["web"]}


async def add_grant(cluster: Any, webhook: Any, reviews: Any, action: dict[str, Any]) -> None:
    body = reviews.grant(actions=[action])
    cluster.create(GRANTS, body, "prod")
    await reviews.until(webhook, lambda cache: bool(cache.grants.for_user("prod", "alice")))


def again(review: dict[str, Any], *, new_uid: bool = False) -> dict[str, Any]:
    """The same review sent again (a DELETE validated twice), or with a new uid (kubectl
    exec's SPDY retry after a refused WebSocket upgrade)."""
    repeated = copy.deepcopy(review)
    if new_uid:
        repeated["request"]["uid"] = str(uuid.uuid4())
    return repeated


async def test_a_delete_validated_again_is_answered_alike_and_recorded_once(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, DELETE_WEB)
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    # The API server validates against its cached object, then against the stored one,
    # whose resourceVersion and deletion stamp differ: still the same request.
    stored = again(first)
    stored["request"]["oldObject"]["metadata"]["resourceVersion"] = "78"
    answers = [await validate(first), await validate(stored), await validate(again(first))]
    assert all(answer.allowed for answer in answers)
    [record] = audit_log()
    assert record["type"] == "action.allowed" and record["admissionUID"] == first["request"]["uid"]

    # A genuinely new request for the same delete is decided and recorded.
    assert (await validate(again(first, new_uid=True))).allowed
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.allowed"]


async def test_the_same_uid_with_other_facts_is_decided_again(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    first = reviews.exec()
    other = again(first)
    other["request"]["object"]["command"] = ["rm", "-rf", "/"]
    assert not (await validate(first)).allowed
    assert not (await validate(other)).allowed
    assert [r["action"]["command"] for r in audit_log()] == [["ls"], ["rm", "-rf", "/"]]


async def test_a_refused_exec_retried_over_spdy_is_recorded_once(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    websocket = reviews.exec()
    first = await validate(websocket)
    retry = await validate(again(websocket, new_uid=True))
    assert not first.allowed and not retry.allowed
    assert retry.message == first.message
    [record] = audit_log()
    assert record["type"] == "action.denied"

    # Once a grant exists the next attempt is decided afresh, and allowed.
    await add_grant(cluster, webhook, reviews, EXEC_LS)
    assert (await validate(again(websocket, new_uid=True))).allowed
    assert [r["type"] for r in audit_log()] == ["action.denied", "action.allowed"]


async def test_another_user_or_command_is_never_taken_for_a_retry(
    webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    assert not (await validate(reviews.exec())).allowed
    assert not (await validate(reviews.exec(user="mallory"))).allowed
    assert not (await validate(reviews.exec(command=["cat", "/etc/passwd"]))).allowed
    assert not (await validate(reviews.exec(container="sidecar"))).allowed
    assert len(audit_log()) == 4


async def test_a_uid_replayed_by_another_caller_is_decided_and_recorded_afresh(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any, pki: Any
) -> None:
    # Without --client-ca anyone reaching the port is heard. The API server repeats a review
    # from where it sent it; the same uid and facts from another address is another caller,
    # never answered from the memo without a record of its own.
    await add_grant(cluster, webhook, reviews, EXEC_LS)
    review = reviews.exec()
    assert (await validate(review)).allowed
    assert (await validate(again(review))).allowed
    assert len(audit_log()) == 1
    elsewhere = httpx.AsyncHTTPTransport(verify=pki.client_context(), local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=webhook.url, transport=elsewhere) as forger:
        response = await forger.post("/validate", json=again(review))
    assert response.json()["response"]["allowed"] is True
    first, replayed = audit_log()
    assert replayed["admissionUID"] == first["admissionUID"] == review["request"]["uid"]
    assert replayed["seq"] == first["seq"] + 1
    assert replayed["caller"] == "unverified"
