"""Grants are written by the operator alone; the grant collectors may also delete them, and
the webhook may count one use of a limited grant (`status.uses` up by one, with `lastUse`
naming the review it counted; nothing else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jitgate.core.admission.writes import Write, as_dict
from jitgate.core.refusals import Refusal

_VERBS = {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}
# What the API server changes on every write, whoever makes it.
_SERVER_SET = ("resourceVersion", "managedFields", "generation")
_COUNT_FIELDS = ("uses", "lastUse")


def check_grant_write(
    write: Write,
    *,
    operator_user: str,
    collectors: frozenset[str],
    webhook_user: str | None = None,
) -> Refusal | None:
    """Why this write to a Grant is refused, or None to allow it."""
    user = write.who.user
    if user == operator_user:
        return None
    if write.operation == "DELETE" and user in collectors:
        return None
    if user == webhook_user and write.operation == "UPDATE":
        return _check_use_count(write)
    return Refusal(
        f"only the jitgate operator ({operator_user}) may {_VERBS.get(write.operation, 'write')} "
        "Grants; ask for access with kubectl jit request instead",
        "GrantWriteForbidden",
    )


def _check_use_count(write: Write) -> Refusal | None:
    """The webhook's one write: the use count of a limited grant, up by exactly one, within
    its limit; any other change (even a count set back) is refused."""
    old, new = as_dict(write.old_object), as_dict(write.object)
    limit = as_dict(old.get("spec")).get("maxUses")
    before = as_dict(old.get("status")).get("uses") or 0
    after = as_dict(new.get("status")).get("uses")
    if _without_uses(old) != _without_uses(new):
        return Refusal(
            "the jitgate webhook may only count a use (status.uses, status.lastUse) of a Grant",
            "GrantWriteForbidden",
        )
    if not isinstance(limit, int) or not isinstance(before, int) or not isinstance(after, int):
        return Refusal("only a Grant with maxUses has a use count", "GrantWriteForbidden")
    if after != before + 1 or after > limit:
        return Refusal(
            f"a use count moves up by one within maxUses {limit}, not from {before} to {after}",
            "GrantWriteForbidden",
        )
    return None


def _without_uses(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in as_dict(obj.get("metadata")).items() if k not in _SERVER_SET}
    status = {k: v for k, v in as_dict(obj.get("status")).items() if k not in _COUNT_FIELDS}
    return {**obj, "metadata": metadata, "status": status}
