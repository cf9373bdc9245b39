"""Grants are written by the operator alone; the grant collectors may also delete them."""

from __future__ import annotations

from jitgate.core.admission.writes import Write
from jitgate.core.refusals import Refusal

_VERBS = {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}


def check_grant_write(
    write: Write, *, operator_user: str, collectors: frozenset[str]
) -> Refusal | None:
    """Why this write to a Grant is refused, or None to allow it."""
    user = write.who.user
    if user == operator_user:
        return None
    if write.operation == "DELETE" and user in collectors:
        return None
    return Refusal(
        f"only the jitgate operator ({operator_user}) may {_VERBS.get(write.operation, 'write')} "
        "Grants; ask for access with kubectl jit request instead",
        "GrantWriteForbidden",
    )
