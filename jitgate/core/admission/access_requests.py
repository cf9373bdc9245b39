"""`/validate` for AccessRequests: what a user could only have typed is refused.

A forged or missing requester on CREATE; on UPDATE any spec edit, status writes beyond
appending one approval (`approvals`), and annotation changes the requester or an approver
may not make (`annotations`). The operator's own updates are only held to the immutable spec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from jitgate.core.admission.annotations import (
    check_annotation_changes,
    check_created_annotations,
)
from jitgate.core.admission.approvals import check_status, strict
from jitgate.core.admission.readiness import NOT_READY, NotReady
from jitgate.core.admission.writes import Write, annotations_of, as_dict, check_metadata
from jitgate.core.api import AccessPolicy, AccessRequestSpec
from jitgate.core.policy import Governing
from jitgate.core.refusals import Refusal

# The AccessPolicy of that name, None when there is none; raises NotReady when the caller
# does not know the policies yet.
PolicyLookup = Callable[[str], AccessPolicy | None]


def check_access_request(
    write: Write, *, operator_user: str, policy: PolicyLookup, now: dt.datetime
) -> Refusal | None:
    """Why this AccessRequest write is refused, or None to allow it."""
    refusal = check_metadata(write.object)
    if refusal is not None:
        return refusal
    try:
        match write.operation:
            case "CREATE":
                return _check_create(write)
            case "UPDATE":
                return _check_update(write, operator_user, policy, now)
    except NotReady:
        return Refusal(f"{NOT_READY}; retry in a moment", "NotReady")
    return None


def _parse_spec(obj: Mapping[str, Any] | None) -> AccessRequestSpec | Refusal:
    try:
        return strict(AccessRequestSpec, as_dict(obj).get("spec"))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in ("spec", *first["loc"]))
        return Refusal(f"the AccessRequest is invalid at {where}: {first['msg']}", "Invalid")


def _check_create(write: Write) -> Refusal | None:
    spec = _parse_spec(write.object)
    if isinstance(spec, Refusal):
        return spec
    requester, who = spec.requester, write.who
    if requester is None:
        return Refusal(
            "spec.requester was not stamped; is jitgate's mutating webhook installed?",
            "RequesterMissing",
        )
    if requester.user != who.user or set(requester.groups) != set(who.groups):
        return Refusal(
            f"spec.requester must be the authenticated user {who.user}, "
            f"not {requester.user}; jitgate sets it, so leave it out",
            "RequesterForged",
        )
    why = check_created_annotations(annotations_of(write.object))
    return Refusal(why, "NotAllowed") if why else None


def _check_update(
    write: Write, operator_user: str, policy: PolicyLookup, now: dt.datetime
) -> Refusal | None:
    old, new = as_dict(write.old_object), as_dict(write.object)
    if old.get("spec") != new.get("spec"):
        return Refusal(
            "the spec of an AccessRequest cannot change after creation; "
            "create a new AccessRequest instead",
            "SpecImmutable",
        )
    who = write.who
    if who.user == operator_user:
        return None
    spec = _parse_spec(old)
    if isinstance(spec, Refusal):
        return spec
    requester = spec.requester.user if spec.requester else ""
    old_status, new_status = as_dict(old.get("status")), as_dict(new.get("status"))
    phase = old_status.get("phase")
    names = _policy_names(old_status)

    def lookup() -> Governing | None:
        found = [policy(name) for name in names]
        if any(p is None for p in found):
            return None  # a governing policy is gone: nothing can be checked against it
        return Governing.of(p for p in found if p is not None)

    if old_status != new_status:
        refusal = check_status(old_status, new_status, who, requester, spec, lookup, now)
        if refusal is not None:
            return refusal
    return check_annotation_changes(
        annotations_of(old),
        annotations_of(new),
        who=who,
        requester=requester,
        phase=phase if isinstance(phase, str) else None,
        break_glass=spec.break_glass,
        governing=lookup,
    )


def _policy_names(status: Mapping[str, Any]) -> list[str]:
    """The governing policies a stored status names (`policies`, else `policy`); none when
    it names them in a shape jitgate does not write, so nothing is checked against a guess."""
    listed = status.get("policies")
    if listed:
        names = [entry.get("name") if isinstance(entry, Mapping) else None for entry in listed]
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in names):
            return []
        return [n for n in names if isinstance(n, str)]
    single = status.get("policy")
    return [single] if isinstance(single, str) else []
