"""`/mutate`: the authenticated identity written into an AccessRequest, whatever was typed.

The requester on CREATE; on each appended approval the approver, their groups, the time and
the digest of the spec decided on; the *-by annotation of each cancel, revoke or review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.admission.writes import (
    Identity,
    JsonPatch,
    Write,
    annotations_of,
    approvals_of,
    as_dict,
    check_metadata,
)
from jitgate.core.api import AccessRequestSpec
from jitgate.core.clock import format_time
from jitgate.core.refusals import Refusal
from jitgate.core.requests.annotations import STAMPED_ANNOTATIONS


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def stamp_requester(raw_spec: dict[str, Any], who: Identity) -> JsonPatch:
    """On CREATE: the requester is whoever authenticated, whatever the object says."""
    value = {"user": who.user, "groups": list(who.groups)}
    op = "replace" if "requester" in raw_spec else "add"
    return [{"op": op, "path": "/spec/requester", "value": value}]


def stamp_new_approvals(
    old_approvals: Sequence[dict[str, Any]],
    new_approvals: Sequence[dict[str, Any]],
    who: Identity,
    now: dt.datetime,
    digest_of_spec: str,
) -> JsonPatch:
    """On a status UPDATE: each appended approval gets the approver's identity and time."""
    stamp = {
        "user": who.user,
        "groups": list(who.groups),
        "time": format_time(now),
        "specDigest": digest_of_spec,
        **({"via": who.via} if who.via else {}),
    }
    patch: JsonPatch = []
    for index in range(len(old_approvals), len(new_approvals)):
        entry = new_approvals[index]
        if not isinstance(entry, dict):
            continue  # validation refuses it with a clear message
        # A typed `via` is dropped: where a decision came from is stamped like who made it.
        typed = {key: value for key, value in entry.items() if key != "via"}
        patch.append(
            {"op": "replace", "path": f"/status/approvals/{index}", "value": {**typed, **stamp}}
        )
    return patch


def stamp_annotations(
    old_annotations: Mapping[str, str], new_annotations: Mapping[str, str], who: Identity
) -> JsonPatch:
    """Record who asked to cancel, revoke or review, so the operator never trusts a typed
    name: each of `STAMPED_ANNOTATIONS` newly set, or its *-by annotation typed, gets the
    authenticated user as its *-by annotation."""
    patch: JsonPatch = []
    for request, by in STAMPED_ANNOTATIONS:
        newly_set = request in new_annotations and request not in old_annotations
        if newly_set or (
            by in new_annotations and new_annotations.get(by) != old_annotations.get(by)
        ):
            op = "replace" if by in new_annotations else "add"
            patch.append(
                {"op": op, "path": f"/metadata/annotations/{_escape(by)}", "value": who.user}
            )
    return patch


def stamp(write: Write, now: dt.datetime) -> JsonPatch | Refusal:
    """The JSON patch writing the authenticated identity into an AccessRequest, or why an
    object whose identity fields cannot even be located is refused."""
    if write.operation not in ("CREATE", "UPDATE"):
        return []
    new = write.object
    if new is None:
        return Refusal(f"an AccessRequest {write.operation} must carry the object", "Invalid")
    refusal = check_metadata(new)
    if refusal is not None:
        return refusal
    who = write.who
    if write.operation == "CREATE":
        spec = new.get("spec")
        if not isinstance(spec, dict):
            return Refusal("an AccessRequest needs a spec object", "Invalid")
        return stamp_requester(spec, who) + stamp_annotations({}, annotations_of(new), who)
    patch = stamp_annotations(annotations_of(write.old_object), annotations_of(new), who)
    old_approvals, new_approvals = approvals_of(write.old_object), approvals_of(new)
    if len(new_approvals) > len(old_approvals):
        if not all(isinstance(entry, dict) for entry in new_approvals):
            return Refusal("each entry of status.approvals must be an object", "Invalid")
        try:
            stored = AccessRequestSpec.model_validate(as_dict(write.old_object).get("spec"))
        except ValidationError:
            return Refusal("the stored AccessRequest spec is invalid", "Invalid")
        patch += stamp_new_approvals(old_approvals, new_approvals, who, now, spec_digest(stored))
    return patch
