"""A revoke holds the moment it is written, with the operator down: the replica that admits the
revoke denies under the grant at once (before the write is stored), and every replica learns it
from its AccessRequest watch. The Grant object itself is never touched here: nobody deletes it."""

from __future__ import annotations

import copy
from typing import Any

from support.admission import add_grant, admit, pending_access_request

from jitgate.core.requests.annotations import REVOKE_ANNOTATION

REQUESTS = "accessrequests.jitgate.dev"


def approved(reviews: Any) -> dict[str, Any]:
    obj = pending_access_request(reviews)
    obj["metadata"]["uid"] = reviews.grant()["spec"]["accessRequest"]["uid"]
    obj["status"]["phase"] = "Approved"
    return obj


def revoked(obj: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["metadata"].setdefault("annotations", {})[REVOKE_ANNOTATION] = "true"
    return new


async def test_the_replica_that_admits_a_revoke_denies_under_the_grant_at_once(
    cluster: Any, webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    assert (await validate(reviews.exec())).allowed
    request = approved(reviews)
    answer, _ = await admit(
        mutate, validate, reviews.ar("UPDATE", revoked(request), request, user="alice")
    )
    assert answer.allowed
    # Nothing was stored (the emulator has no such request) and the Grant still exists.
    denied = await validate(reviews.exec())
    assert not denied.allowed
    assert "grant fix-web-0-x7k2 has been revoked" in denied.message
    held = webhook.cache.grants.get("prod", "fix-web-0-x7k2")
    assert held is not None and held.revoked  # what the session gateway asks


async def test_a_refused_revoke_revokes_nothing(
    cluster: Any, webhook: Any, mutate: Any, validate: Any, reviews: Any
) -> None:
    await add_grant(cluster, webhook, reviews)
    request = approved(reviews)
    answer, _ = await admit(
        mutate, validate, reviews.ar("UPDATE", revoked(request), request, user="mallory")
    )
    assert not answer.allowed
    assert (await validate(reviews.exec())).allowed


async def test_other_replicas_learn_a_revoke_from_their_watch(
    cluster: Any, webhook: Any, validate: Any, reviews: Any
) -> None:
    stored = cluster.create(REQUESTS, reviews.access_request(), "prod")
    await add_grant(cluster, webhook, reviews, request_uid=stored["metadata"]["uid"])
    assert (await validate(reviews.exec())).allowed
    # Revoked by a write another replica admitted: this one sees it through the watch.
    annotations = {"metadata": {"annotations": {REVOKE_ANNOTATION: "true"}}}
    cluster.patch(REQUESTS, "prod", "fix-web-0", annotations)
    await reviews.until(webhook, lambda cache: cache.grants.get("prod", "fix-web-0-x7k2").revoked)
    denied = await validate(reviews.exec())
    assert not denied.allowed and "has been revoked" in denied.message
