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
    policy_name = old_status.get("policy")
    lookup = (lambda: policy(policy_name)) if isinstance(policy_name, str) else (lambda: None)
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
        policy=lookup,
    )
