"""One decision and one audit record per user request, however often the API server asks."""

from __future__ import annotations

import copy
import gc
import types
import uuid
from typing import Any

import httpx
from jitgate.webhook.memo import DEFAULT_REPEAT_WINDOW, DecisionMemo
from support.admission import add_grant

GRANTS = "grants.jitgate.dev"
DEPLOYMENTS = ("apps", "v1", "deployments")
EXEC_LS = {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}
DELETE_WEB = {"verb": "delete", "resource": "deployments.apps", "names": ["web"]}
DELETE_WEB_0 = {"verb": "delete", "resource": "pods", "names": ["web-0"]}
SCALE_WEB = {"verb": "scale", "resource": "deployments.apps", "names": ["web"]}


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
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    # The API server validates one DELETE as it marks the object, again as it removes it
    # (resourceVersion and deletion stamp changed) and again on a stale cache: each call
    # with a review uid of its own, and a network resend with the same uid.
    marked = again(first, new_uid=True)
    marked["request"]["oldObject"]["metadata"]["resourceVersion"] = "78"
    answers = [await validate(review) for review in (first, marked, again(first, new_uid=True))]
    answers.append(await validate(again(first)))
    assert all(answer.allowed for answer in answers)
    [record] = audit_log()
    assert record["type"] == "action.allowed" and record["admissionUID"] == first["request"]["uid"]
    # Every call carries the one record's annotations, as the API server's audit log shows.
    assert len({str(answer.response["auditAnnotations"]) for answer in answers}) == 1
    repeats = webhook.service.metrics.registry.get_sample_value(
        "jitgate_webhook_repeated_reviews_total", {"action": "delete"}
    )
    assert repeats == 3


def _held_by(root: object) -> list[object]:
    """Every object `root` holds, through containers and instances (not classes, modules or
    functions, which lead to everything)."""
    skipped = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    found, todo = [], [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skipped):
            continue
        seen.add(id(obj))
        found.append(obj)
        todo.extend(gc.get_referents(obj))
    return found


async def test_a_remembered_delete_keeps_nothing_of_the_deleted_object(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    # The memo holds thousands of answers for tens of seconds: holding each deleted object
    # too would be hundreds of megabytes of pods.
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    assert (await validate(first)).allowed and (await validate(again(first, new_uid=True))).allowed
    memo = webhook.service.memo
    assert len(memo) >= 2
    held = _held_by(memo._answers)
    assert not [obj for obj in held if isinstance(obj, dict) and "resourceVersion" in obj]


async def test_a_delete_is_a_new_request_for_another_object_options_or_dry_run(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    recreated = again(first, new_uid=True)
    recreated["request"]["oldObject"]["metadata"]["uid"] = "a-new-incarnation"
    forced = again(first, new_uid=True)
    forced["request"]["options"]["gracePeriodSeconds"] = 0
    orphaning = again(first, new_uid=True)
    orphaning["request"]["options"]["propagationPolicy"] = "Orphan"
    dry = again(first, new_uid=True)
    dry["request"]["dryRun"] = True
    for review in (first, recreated, forced, orphaning, dry):
        assert (await validate(review)).allowed
    assert len(audit_log()) == 5


async def test_a_repeated_delete_is_decided_afresh_and_a_changed_decision_recorded(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    assert (await validate(first)).allowed
    [grant] = webhook.cache.grants.for_user("prod", "alice")
    cluster.delete(GRANTS, "prod", grant.name)
    await reviews.until(webhook, lambda cache: not cache.grants.for_user("prod", "alice"))
    # The same request's next call, after the Grant went: denied, and the denial recorded.
    assert not (await validate(again(first, new_uid=True))).allowed
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.denied"]
    # Another Grant allowing it: a decision of its own, recorded.
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    assert (await validate(again(first, new_uid=True))).allowed
    assert [r["type"] for r in audit_log()] == ["action.allowed", "action.denied", "action.allowed"]


async def test_a_repeat_after_its_window_is_a_new_request(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    now = [0.0]
    webhook.service.memo = DecisionMemo(monotonic=lambda: now[0])
    await add_grant(cluster, webhook, reviews, actions=[DELETE_WEB])
    first = reviews.delete(reviews.deployment(), DEPLOYMENTS)
    assert (await validate(first)).allowed
    now[0] = DEFAULT_REPEAT_WINDOW - 0.1
    assert (await validate(again(first, new_uid=True))).allowed
    assert len(audit_log()) == 1
    now[0] = DEFAULT_REPEAT_WINDOW * 2
    assert (await validate(again(first, new_uid=True))).allowed
    assert len(audit_log()) == 2


async def test_updates_and_evictions_are_never_taken_for_repeats(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB, DELETE_WEB_0])
    # A scale retried after a write conflict and a new request to the same count look alike:
    # each is decided and recorded on the state it saw.
    assert (await validate(reviews.scale(old=3, new=5))).allowed
    assert (await validate(reviews.scale(old=4, new=5))).allowed
    assert [r["action"]["replicas"] for r in audit_log()] == [
        {"old": 3, "new": 5},
        {"old": 4, "new": 5},
    ]
    # An eviction names no pod uid: a pod re-created under the same name is evicted anew.
    eviction = reviews.review(
        operation="CREATE",
        kind=("policy", "v1", "Eviction"),
        resource=("", "v1", "pods"),
        sub_resource="eviction",
        namespace="prod",
        name="web-0",
        obj={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}},
    )
    assert (await validate(eviction)).allowed
    assert (await validate(again(eviction, new_uid=True))).allowed
    assert len(audit_log()) == 4


async def test_a_trace_id_names_no_request_without_apiserver_traces(
    cluster: Any, webhook: Any, client: httpx.AsyncClient, reviews: Any, audit_log: Any
) -> None:
    # Without --apiserver-traces the API server may be passing on its client's own trace
    # id: two tries sent with one are decided and recorded as two (test_request_traces).
    await add_grant(cluster, webhook, reviews, actions=[SCALE_WEB])
    header = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
    for old in (3, 4):
        review = reviews.scale(old=old, new=5)
        response = await client.post("/validate", json=review, headers=header)
        assert response.json()["response"]["allowed"] is True
    assert len(audit_log()) == 2


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
    await add_grant(cluster, webhook, reviews, actions=[EXEC_LS])
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
    await add_grant(cluster, webhook, reviews, actions=[EXEC_LS])
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


async def test_an_x_forwarded_for_header_names_no_caller(
    cluster: Any, webhook: Any, reviews: Any, audit_log: Any, pki: Any
) -> None:
    # A peer on the webhook's own host that claims, in X-Forwarded-For, the address a review
    # came from is still the peer it is: its replay is decided and recorded afresh.
    await add_grant(cluster, webhook, reviews, actions=[EXEC_LS])
    review = reviews.exec()
    sender = httpx.AsyncHTTPTransport(verify=pki.client_context(), local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=webhook.url, transport=sender) as apiserver:
        assert (await apiserver.post("/validate", json=review)).json()["response"]["allowed"]
    local = httpx.AsyncHTTPTransport(verify=pki.client_context(), local_address="127.0.0.1")
    claimed = {"X-Forwarded-For": "127.0.0.2"}
    async with httpx.AsyncClient(base_url=webhook.url, transport=local, headers=claimed) as peer:
        response = await peer.post("/validate", json=again(review))
    assert response.json()["response"]["allowed"] is True
    first, replayed = audit_log()
    assert replayed["admissionUID"] == first["admissionUID"] == review["request"]["uid"]
    assert replayed["seq"] == first["seq"] + 1
