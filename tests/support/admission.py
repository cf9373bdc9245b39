"""Steps the webhook tier's tests share (tests/webhook): seeding a Grant and waiting for the
webhook's watch to have it, admitting a review the way the API server does (mutate, patch,
validate), and an AccessRequest as stored after its CREATE.

They take the tier's fixtures (`cluster`, `webhook`, `reviews`, `mutate`, `validate`) as
arguments, so test modules share them without importing one another.
"""

from __future__ import annotations

from typing import Any

import jsonpatch  # type: ignore[import-untyped]
from support.personas import ALICE

GRANTS = "grants.jitgate.dev"


async def add_grant(cluster: Any, webhook: Any, reviews: Any, **fields: Any) -> dict[str, Any]:
    """Create the tier's Grant (`reviews.grant(**fields)`) and return it once the webhook's
    watch has delivered it, so the next review is decided with it."""
    body = reviews.grant(**fields)
    namespace = body["metadata"]["namespace"]
    created = cluster.create(GRANTS, body, namespace)
    name, user = body["metadata"]["name"], body["spec"]["user"]
    await reviews.until(
        webhook, lambda cache: any(g.name == name for g in cache.grants.for_user(namespace, user))
    )
    return created  # type: ignore[no-any-return]


def grant_uses(cluster: Any, name: str = "fix-web-0-x7k2", namespace: str = "prod") -> int | None:
    """A limited Grant's `status.uses` as the API server (the tier's emulator) stores it."""
    stored = cluster.handle.emulator.read_object(GRANTS, namespace, name)
    return (stored.get("status") or {}).get("uses")  # type: ignore[no-any-return]


async def admit(
    mutate: Any, validate: Any, review: dict[str, Any]
) -> tuple[Any, dict[str, Any] | None]:
    """Mutate, apply the patch, validate: (validate's answer, the object as stored)."""
    mutated = await mutate(review)
    assert mutated.allowed
    request = review["request"]
    if "patch" in mutated.response:
        request = {**request, "object": jsonpatch.apply_patch(request["object"], mutated.patch)}
    answer = await validate({**review, "request": request})
    return answer, request["object"]


def pending_access_request(reviews: Any, **spec: Any) -> dict[str, Any]:
    """alice's AccessRequest as stored after CREATE: requester stamped, Pending under the
    tier's policy `production`."""
    obj = reviews.access_request(**spec)
    obj["spec"]["requester"] = {
        "user": ALICE.name,
        "groups": [*ALICE.groups, "system:authenticated"],
    }
    obj["status"] = {
        "phase": "Pending",
        "policy": "production",
        "requiredApprovals": 1,
        "pendingDeadline": "2026-11-21T11:00:00Z",
    }
    return obj
