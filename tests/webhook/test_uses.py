"""One-time and N-use grants: each allowed action under a grant with maxUses is counted on the
Grant at the API server (here the emulator) before it is answered; a used-up grant denies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jitgate.webhook.uses import Conflict, Counted, GrantStore, UsedUp, count_use
from support.admission import grant_uses

GRANTS = "grants.jitgate.dev"
AGAIN = (
    'kubectl jit request exec web-0 -n prod -c app --max-uses 1 --for 15m --reason "<why>" -- ls'
)


async def limited_grant(cluster: Any, webhook: Any, reviews: Any, **fields: Any) -> str:
    body = reviews.grant(**fields)
    cluster.create(GRANTS, body, "prod")
    name: str = body["metadata"]["name"]
    await reviews.until(
        webhook, lambda cache: any(g.name == name for g in cache.grants.for_user("prod", "alice"))
    )
    return name


def use_counts(webhook: Any, outcome: str) -> float:
    value = webhook.service.metrics.registry.get_sample_value(
        "jitgate_webhook_grant_use_counts_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_one_time_grant_allows_one_exec_then_says_it_was_used(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=1)
    first = await validate(reviews.exec(command=["ls"]))
    assert first.allowed, first.message
    assert grant_uses(cluster) == 1
    second = await validate(reviews.exec(command=["ls"]))
    assert not second.allowed
    assert second.message == (
        "jitgate denied exec into pod web-0 in namespace prod (container app, command ls): "
        f"grant fix-web-0-x7k2 was for 1 use and has been used; ask again with: {AGAIN}"
    )
    allowed, denied = audit_log()
    assert allowed["type"] == "action.allowed"
    assert (allowed["context"]["use"], allowed["context"]["maxUses"]) == (1, 1)
    assert denied["type"] == "action.denied"
    assert denied["grant"] == "fix-web-0-x7k2"
    assert denied["reason"].startswith("GrantUsedUp: ")
    assert grant_uses(cluster) == 1


async def test_each_use_is_numbered_until_the_last(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=3)
    answers = [await validate(reviews.exec(command=["ls"])) for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert "was for 3 uses and all 3 have been used" in answers[3].message
    assert [r["context"].get("use") for r in audit_log()] == [1, 2, 3, None]


async def test_one_user_request_reviewed_twice_is_counted_once(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=2)
    review = reviews.exec(command=["ls"])
    assert (await validate(review)).allowed
    assert (await validate(review)).allowed  # the API server asking again, same uid
    assert grant_uses(cluster) == 1
    assert len(audit_log()) == 1


async def test_a_dry_run_is_decided_the_same_way_and_uses_nothing(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=1)
    dry = await validate(reviews.exec(command=["ls"], dry_run=True))
    assert dry.allowed
    assert grant_uses(cluster) is None
    assert (await validate(reviews.exec(command=["ls"]))).allowed
    assert not (await validate(reviews.exec(command=["ls"], dry_run=True))).allowed
    assert [r["dryRun"] for r in audit_log()] == [True, False, True]


async def test_an_unlimited_grant_is_decided_without_counting(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, name="limited", max_uses=1)
    await limited_grant(cluster, webhook, reviews, name="unlimited")
    for _ in range(3):
        answer = await validate(reviews.exec(command=["ls"]))
        assert answer.allowed
        assert answer.response["auditAnnotations"]["grant"] == "unlimited"
    assert grant_uses(cluster, "limited") is None
    assert use_counts(webhook, "Counted") == 0


async def test_a_count_the_api_server_cannot_make_denies(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=1)
    cluster.delete(GRANTS, "prod", "fix-web-0-x7k2")  # gone before the watch says so
    answer = await validate(reviews.exec(command=["ls"]))
    assert not answer.allowed


def test_replicas_that_race_are_counted_once_each() -> None:
    """Two replicas read the same resourceVersion; one writes first. The other's write
    conflicts; it reads again and finds the grant used up."""
    stored: dict[str, Any] = {"metadata": {"resourceVersion": "1"}, "spec": {"maxUses": 1}}
    stale = dict(stored)

    def replace_status(namespace: str, name: str, body: Any, timeout: float) -> None:
        nonlocal stored
        if body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise Conflict()
        version = int(stored["metadata"]["resourceVersion"]) + 1
        stored = {**body, "metadata": {"resourceVersion": str(version)}}

    winner = GrantStore(lambda *_: stored, replace_status)
    assert count_use(winner, "prod", "g", "review-1", dry_run=False) == Counted(1, 1)
    reads = iter([stale])  # the loser's first read came before the winner's write
    loser = GrantStore(lambda *_: next(reads, stored), replace_status)
    assert count_use(loser, "prod", "g", "review-2", dry_run=False) == UsedUp(1, 1)
    assert stored["status"] == {"uses": 1, "lastUse": "review-1"}


def test_a_write_whose_answer_was_lost_is_recognised_by_its_review() -> None:
    """The write landed but its answer timed out: the next read shows the count naming this
    review, so the use is counted once, not refused as used up (nor counted again)."""
    stored: dict[str, Any] = {"metadata": {"resourceVersion": "1"}, "spec": {"maxUses": 1}}

    def replace_status(namespace: str, name: str, body: Any, timeout: float) -> None:
        nonlocal stored
        stored = {**body, "metadata": {"resourceVersion": "2"}}
        raise TimeoutError("read timed out")

    store = GrantStore(lambda *_: stored, replace_status)
    assert count_use(store, "prod", "g", "review-1", dry_run=False) == Counted(1, 1)
    assert count_use(store, "prod", "g", "review-2", dry_run=False) == UsedUp(1, 1)


@pytest.mark.parametrize("maximum", [1, 5])
async def test_concurrent_uses_never_exceed_the_limit(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, maximum: int
) -> None:
    await limited_grant(cluster, webhook, reviews, max_uses=maximum)
    answers = await asyncio.gather(
        *(validate(reviews.exec(command=["ls"])) for _ in range(maximum + 5))
    )
    assert sum(a.allowed for a in answers) == maximum
    assert grant_uses(cluster) == maximum


async def test_a_delete_validated_again_uses_a_one_time_grant_once(
    cluster: Any, webhook: Any, validate: Any, reviews: Any, audit_log: Any
) -> None:
    # The API server validates one DELETE again, with a uid of its own, on its stale cached
    # copy or as it removes the object: the same user request, which must not find its own
    # use spent and fail half-way.
    delete_web = {"verb": "delete", "resource": "deployments.apps", "names": ["web"]}
    await limited_grant(cluster, webhook, reviews, max_uses=1, actions=[delete_web])
    first = reviews.delete(reviews.deployment(), ("apps", "v1", "deployments"))
    assert (await validate(first)).allowed
    again = {**first, "request": {**first["request"], "uid": "a-uid-of-its-own"}}
    answer = await validate(again)
    assert answer.allowed, answer.message
    assert grant_uses(cluster) == 1
    [allowed] = audit_log()
    assert allowed["context"]["use"] == 1
