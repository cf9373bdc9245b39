"""`/validate` for AccessRequests: what a user could only have typed is refused.

On CREATE: a forged or missing requester, a name written with its kind (`pod/web-0`), and,
once the policies are known, a request the operator would deny at once (`resolve_request`:
no governing policy, a requester or break-glass they do not allow, a duration above their
maximum, uses they require or cap, a scheduled start in the past or too far ahead, an
extension of a request that is not the requester's, not live, or for other actions), so the
requester hears it from kubectl instead of a second later. Names of pods that
do not exist only earn a warning (`missing_pods_warning`). On UPDATE any spec edit, status
writes beyond appending one approval (`approvals`), and annotation changes the requester or an
approver may not make (`annotations`). The operator's own updates are only held to the
immutable spec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from jitgate.core import extensions
from jitgate.core.admission.annotations import (
    check_annotation_changes,
    check_created_annotations,
)
from jitgate.core.admission.approvals import check_status, strict
from jitgate.core.admission.readiness import NOT_READY, NotReady
from jitgate.core.admission.writes import Write, annotations_of, as_dict, check_metadata
from jitgate.core.api import AccessPolicy, AccessRequestSpec
from jitgate.core.clock import format_time
from jitgate.core.durations import format_duration
from jitgate.core.extensions import Extended
from jitgate.core.policy import Governing, Namespace, Policies, Resolution, resolve_request
from jitgate.core.refusals import Refusal
from jitgate.core.vocabulary import PODS, kind_named

# The AccessPolicy of that name, None when there is none; raises NotReady when the caller
# does not know the policies yet.
PolicyLookup = Callable[[str], AccessPolicy | None]


@dataclass(frozen=True)
class Scope:
    """What decides a new request in one namespace: the policies and the namespace's labels."""

    policies: Policies
    namespace: Namespace


# The scope of a namespace; raises NotReady when the caller does not know the policies yet.
ScopeLookup = Callable[[str], Scope]

# How many existing pods a warning about missing ones names.
PODS_SHOWN = 5


def check_access_request(
    write: Write,
    *,
    operator_user: str,
    policy: PolicyLookup,
    scope: ScopeLookup,
    now: dt.datetime,
    extended: Extended | None = None,
) -> Refusal | None:
    """Why this AccessRequest write is refused, or None to allow it. `extended`: for a new
    extension, the request it names and that request's grant, as the caller read them."""
    refusal = check_metadata(write.object)
    if refusal is not None:
        return refusal
    try:
        match write.operation:
            case "CREATE":
                return _check_create(write, scope, now, extended)
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


def _check_create(
    write: Write, scope: ScopeLookup, now: dt.datetime, extended: Extended | None
) -> Refusal | None:
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
    refusal = _kind_in_names(spec) or _combinations(spec)
    if refusal is not None:
        return refusal
    why = check_created_annotations(annotations_of(write.object))
    if why:
        return Refusal(why, "NotAllowed")
    # Only now the policies: every check above holds whatever the cache knows.
    namespace = str(as_dict(as_dict(write.object).get("metadata")).get("namespace") or "")
    resolved = _check_policies(spec, scope(namespace), who.user, who.groups)
    if isinstance(resolved, Refusal):
        return resolved
    refusal = check_start(spec, resolved.governing, now)
    if refusal is not None or spec.extends is None:
        return refusal
    known = extended or Extended(spec.extends.name, None, None)
    return extensions.refusal(spec, who.user, known, resolved.governing, now)


def _combinations(spec: AccessRequestSpec) -> Refusal | None:
    """Fields that cannot go together: break-glass is for now, an extension continues a grant
    as it is."""
    if spec.break_glass and spec.start_at is not None:
        return Refusal(
            "break-glass access starts at once: leave out startAt (--start-at) or ask "
            "without --break-glass",
            "Invalid",
        )
    if spec.extends is not None:
        if spec.break_glass:
            return Refusal(
                "an extension is approved like the request it extends: leave out breakGlass",
                "Invalid",
            )
        for field, given in (("maxUses", spec.max_uses), ("startAt", spec.start_at)):
            if given is not None:
                return Refusal(
                    f"an extension continues the grant it extends at once and as it is: "
                    f"leave out {field}",
                    "Invalid",
                )
        if spec.duration is None:
            return Refusal(
                "an extension needs a duration: how much longer (kubectl jit extend --by 15m)",
                "Invalid",
            )
    return None


def check_start(spec: AccessRequestSpec, governing: Governing, now: dt.datetime) -> Refusal | None:
    """A scheduled start must lie ahead, within how far every governing policy allows."""
    if spec.start_at is None:
        return None
    if spec.start_at <= now:
        return Refusal(
            f"startAt {format_time(spec.start_at)} is in the past (it is now {format_time(now)}); "
            "leave it out to start at approval, or give a later time",
            "StartAtInPast",
        )
    ahead = governing.max_start_ahead
    if spec.start_at - now > ahead:
        return Refusal(
            f"startAt {format_time(spec.start_at)} is too far ahead: {governing.describe()} "
            f"allow{'s' if len(governing.names) == 1 else ''} scheduling at most "
            f"{format_duration(ahead)} ahead (until {format_time(now + ahead)})",
            "StartAtTooFar",
        )
    return None


def _kind_in_names(spec: AccessRequestSpec) -> Refusal | None:
    """`pod/web-0` or `deploy/web` in `names`: it could never match an object's name, so the
    request would wait for nothing; the action's resource already says the kind."""
    for action in spec.actions:
        for name in action.names:
            prefix, slash, bare = name.partition("/")
            if not slash:
                continue
            if kind_named(prefix) is not None and bare and "/" not in bare:
                return Refusal(
                    f"names are object names without a kind: write {bare}, not {name}; "
                    "the action's resource says the kind",
                    "Invalid",
                )
            return Refusal(
                f"names are object names, which never contain '/': {name} cannot match one",
                "Invalid",
            )
    return None


def _check_policies(
    spec: AccessRequestSpec, scope: Scope, user: str, groups: Collection[str]
) -> Resolution | Refusal:
    """What the operator would deny this request for at once (the operator stays the
    backstop: it decides again, from the policies as they are then)."""
    broken = next(
        (p for p in scope.policies.unreadable.values() if p.may_cover(scope.namespace)), None
    )
    if broken is not None:
        return broken.refusing_requests_in(scope.namespace)
    return resolve_request(scope.policies.by_name.values(), scope.namespace, spec, user, groups)


def missing_pods_warning(
    spec: AccessRequestSpec, namespace: str, existing: Collection[str]
) -> str | None:
    """A warning naming the pods the request names that do not exist in `namespace` (a typo,
    most likely) and up to `PODS_SHOWN` that do; None when every named pod exists."""
    named = {
        name
        for action in spec.actions
        if action.effective_resource == PODS
        for name in action.names
    }
    missing = sorted(named - set(existing))
    if not missing:
        return None
    pods = f"pod {missing[0]}" if len(missing) == 1 else f"pods {', '.join(missing)}"
    shown = sorted(existing)[:PODS_SHOWN]
    if not shown:
        return f"no {pods} in namespace {namespace}, which has no pods; check the name"
    more = ", ..." if len(existing) > PODS_SHOWN else ""
    return (
        f"no {pods} in namespace {namespace}; check the name (pods there: {', '.join(shown)}{more})"
    )


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
