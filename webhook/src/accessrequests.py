"""Admission of jitgate's own objects: AccessRequest stamping and rules, Grant write guard.

`/mutate` stamps identities from the authenticated `userInfo`; `/validate` then refuses
anything a user could only have typed: a forged requester or approver, spec edits, edited or
removed approvals, status writes beyond appending one approval, cancel/revoke by anyone
but the requester or an approver, and reviews of break-glass grants by anyone but an approver
other than the requester. Grants are written by the operator alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from jitgate.webhook.review import AdmissionRequest
from pydantic import BaseModel, ValidationError

from jitgate.core.api import GROUP, AccessPolicy, AccessRequestSpec, Approval
from jitgate.core.approvals import (
    Identity,
    JsonPatch,
    check_annotation_changes,
    check_approval_append,
    check_created_annotations,
    spec_digest,
    stamp_annotations,
    stamp_new_approvals,
    stamp_requester,
)
from jitgate.core.clock import parse_time
from jitgate.core.refusals import Refusal

ACCESS_REQUESTS = "accessrequests"
GRANTS = "grants"

PolicyLookup = Callable[[str], AccessPolicy | None]
M = TypeVar("M", bound=BaseModel)


class NotReady(Exception):
    """The decision needs the policy cache, which has not synced yet."""


def jitgate_kind(request: AdmissionRequest) -> str | None:
    """`accessrequests` or `grants` when the review is about one of jitgate's kinds."""
    if request.resource.group != GROUP:
        return None
    kind = request.resource.resource
    return kind if kind in (ACCESS_REQUESTS, GRANTS) else None


def _identity(request: AdmissionRequest) -> Identity:
    return Identity(request.user, request.groups)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotations(obj: Mapping[str, Any] | None) -> dict[str, str]:
    annotations = _dict(_dict(obj).get("metadata")).get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {str(key): value for key, value in annotations.items() if isinstance(value, str)}


def _approvals(obj: Mapping[str, Any] | None) -> list[Any]:
    approvals = _dict(_dict(obj).get("status")).get("approvals")
    return approvals if isinstance(approvals, list) else []


# /mutate


def stamp(request: AdmissionRequest, now: dt.datetime) -> JsonPatch | Refusal:
    """The JSON patch writing the authenticated identity into an AccessRequest, or why an
    object whose identity fields cannot even be located is refused."""
    if jitgate_kind(request) != ACCESS_REQUESTS or request.operation not in ("CREATE", "UPDATE"):
        return []
    if request.object is None:
        return Refusal(f"an AccessRequest {request.operation} must carry the object", "Invalid")
    refusal = _check_metadata(request.object)
    if refusal is not None:
        return refusal
    who = _identity(request)
    new = request.object
    if request.operation == "CREATE":
        spec = new.get("spec")
        if not isinstance(spec, dict):
            return Refusal("an AccessRequest needs a spec object", "Invalid")
        return stamp_requester(spec, who) + stamp_annotations({}, _annotations(new), who)
    patch = stamp_annotations(_annotations(request.old_object), _annotations(new), who)
    old_approvals, new_approvals = _approvals(request.old_object), _approvals(new)
    if len(new_approvals) > len(old_approvals):
        if not all(isinstance(entry, dict) for entry in new_approvals):
            return Refusal("each entry of status.approvals must be an object", "Invalid")
        try:
            stored = AccessRequestSpec.model_validate(_dict(request.old_object).get("spec"))
        except ValidationError:
            return Refusal("the stored AccessRequest spec is invalid", "Invalid")
        patch += stamp_new_approvals(old_approvals, new_approvals, who, now, spec_digest(stored))
    return patch


# /validate


def check_access_request(
    request: AdmissionRequest,
    *,
    operator_user: str,
    policy: PolicyLookup,
    now: dt.datetime,
) -> Refusal | None:
    """Why this AccessRequest write is refused, or None to allow it."""
    refusal = _check_metadata(request.object)
    if refusal is not None:
        return refusal
    match request.operation:
        case "CREATE":
            return _check_create(request)
        case "UPDATE":
            return _check_update(request, operator_user, policy, now)
    return None


def _check_metadata(obj: Mapping[str, Any] | None) -> Refusal | None:
    metadata = _dict(obj).get("metadata", {})
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or not (
        annotations is None
        or (isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values()))
    ):
        return Refusal("metadata.annotations must map names to strings", "Invalid")
    return None


def _strict(model: type[M], value: Any) -> M:
    # Via JSON, so that strict mode still reads timestamps from their RFC 3339 strings.
    return model.model_validate_json(json.dumps(value), strict=True)


def _parse_spec(obj: Mapping[str, Any] | None) -> AccessRequestSpec | Refusal:
    try:
        return _strict(AccessRequestSpec, _dict(obj).get("spec"))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in ("spec", *first["loc"]))
        return Refusal(f"the AccessRequest is invalid at {where}: {first['msg']}", "Invalid")


def _check_create(request: AdmissionRequest) -> Refusal | None:
    spec = _parse_spec(request.object)
    if isinstance(spec, Refusal):
        return spec
    requester = spec.requester
    if requester is None:
        return Refusal(
            "spec.requester was not stamped; is jitgate's mutating webhook installed?",
            "RequesterMissing",
        )
    if requester.user != request.user or set(requester.groups) != set(request.groups):
        return Refusal(
            f"spec.requester must be the authenticated user {request.user}, "
            f"not {requester.user}; jitgate sets it, so leave it out",
            "RequesterForged",
        )
    why = check_created_annotations(_annotations(request.object))
    return Refusal(why, "NotAllowed") if why else None


def _check_update(
    request: AdmissionRequest, operator_user: str, policy: PolicyLookup, now: dt.datetime
) -> Refusal | None:
    old, new = _dict(request.old_object), _dict(request.object)
    if old.get("spec") != new.get("spec"):
        return Refusal(
            "the spec of an AccessRequest cannot change after creation; "
            "create a new AccessRequest instead",
            "SpecImmutable",
        )
    if request.user == operator_user:
        return None
    spec = _parse_spec(old)
    if isinstance(spec, Refusal):
        return spec
    requester = spec.requester.user if spec.requester else ""
    old_status, new_status = _dict(old.get("status")), _dict(new.get("status"))
    phase = old_status.get("phase")
    policy_name = old_status.get("policy")
    lookup = (lambda: policy(policy_name)) if isinstance(policy_name, str) else (lambda: None)
    who = _identity(request)
    if old_status != new_status:
        refusal = _check_status(old_status, new_status, who, requester, spec, lookup, now)
        if refusal is not None:
            return refusal
    return check_annotation_changes(
        _annotations(old),
        _annotations(new),
        who=who,
        requester=requester,
        phase=phase if isinstance(phase, str) else None,
        break_glass=spec.break_glass,
        policy=lookup,
    )


def _parse_approvals(values: Any) -> list[Approval] | Refusal:
    if values is None:
        return []
    try:
        if not isinstance(values, list):
            raise TypeError
        return [_strict(Approval, value) for value in values]
    except (TypeError, ValidationError):
        return Refusal(
            "status.approvals must be a list of approvals "
            '(e.g. {"decision": "Approve", "comment": "ok"})',
            "Invalid",
        )


def _check_status(
    old: dict[str, Any],
    new: dict[str, Any],
    who: Identity,
    requester: str,
    spec: AccessRequestSpec,
    policy: Callable[[], AccessPolicy | None],
    now: dt.datetime,
) -> Refusal | None:
    without = {key: value for key, value in new.items() if key != "approvals"}
    if without != {key: value for key, value in old.items() if key != "approvals"}:
        return Refusal(
            "only the jitgate operator may change an AccessRequest's status; "
            "approvers may only append one entry to status.approvals",
            "StatusReadOnly",
        )
    old_approvals = _parse_approvals(old.get("approvals"))
    new_approvals = _parse_approvals(new.get("approvals"))
    if isinstance(old_approvals, Refusal):
        return old_approvals
    if isinstance(new_approvals, Refusal):
        return new_approvals
    why = check_approval_append(
        phase=old.get("phase") if isinstance(old.get("phase"), str) else None,
        old_approvals=old_approvals,
        new_approvals=new_approvals,
        requester=requester,
        who=who,
        policy=policy() if len(new_approvals) > len(old_approvals) else None,
        digest_of_spec=spec_digest(spec),
    )
    appended = len(new_approvals) > len(old_approvals)
    if why is None and appended and _past(old.get("pendingDeadline"), now):
        why = "the request's pending deadline has passed, so it can no longer be decided"
    # Groups decide eligibility when the operator re-counts, so they must be real too.
    if why is None and appended and set(new_approvals[-1].groups) != set(who.groups):
        why = f"an approval must carry the authenticated groups of {who.user}"
    return Refusal(why, "ApprovalRefused") if why else None


def _past(deadline: Any, now: dt.datetime) -> bool:
    if not isinstance(deadline, str):
        return False
    try:
        return now >= parse_time(deadline)
    except ValueError:
        return False


def check_grant_write(
    request: AdmissionRequest, *, operator_user: str, collectors: frozenset[str]
) -> Refusal | None:
    """Grants are created, changed and deleted by the operator only."""
    if request.user == operator_user:
        return None
    if request.operation == "DELETE" and request.user in collectors:
        return None
    verb = {"CREATE": "create", "UPDATE": "change", "DELETE": "delete"}.get(
        request.operation, "write"
    )
    return Refusal(
        f"only the jitgate operator ({operator_user}) may {verb} Grants; "
        "ask for access with kubectl jit request instead",
        "GrantWriteForbidden",
    )
