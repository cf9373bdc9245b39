"""Building AccessRequests from `kubectl jit request …` arguments, without I/O."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from jitgate.cli.kinds import Target
from jitgate.core import wire
from jitgate.core.api import (
    AccessRequest,
    AccessRequestSpec,
    ObjectMeta,
    RequestedAction,
    RequestName,
)
from jitgate.core.vocabulary import NAMESPACES, SCALABLE_RESOURCES, UNPROTECT_VERB, Verb

# The alphabet Kubernetes uses for generateName suffixes: no vowels, no look-alikes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 4
# A DNS label, so the grant name derived from it stays a valid object name too.
_MAX_NAME = 63
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


class RequestError(ValueError):
    """Arguments that cannot make a valid AccessRequest."""


def connect_action(
    verb: Verb, pod: str, container: str | None, command: Sequence[str] | None
) -> RequestedAction:
    """The action for exec, attach or portforward on one pod."""
    if container is not None and verb not in ("exec", "attach"):
        raise RequestError(f"-c/--container applies only to exec and attach, not {verb}")
    if command and verb != "exec":
        raise RequestError(f"a command after -- applies only to exec, not {verb}")
    return _action(
        verb=verb, resource="pods", names=[pod], container=container, command=command or None
    )


def object_actions(
    verb: Verb, targets: Sequence[Target], replicas: int | None = None
) -> list[RequestedAction]:
    """One action per resource for delete or scale, naming every object given for it (a scale
    may pin the replica count); unprotect names exactly one namespace."""
    if replicas is not None and verb != "scale":
        raise RequestError(f"--replicas applies only to scale, not {verb}")
    if verb == UNPROTECT_VERB and (len(targets) != 1 or targets[0].resource != NAMESPACES):
        raise RequestError("unprotect applies to one namespace: unprotect namespace/NAME")
    names_by_resource: dict[str, list[str]] = {}
    for target in targets:
        if verb == "scale" and target.resource not in SCALABLE_RESOURCES:
            raise RequestError(
                "scale applies to deployments, statefulsets, replicasets, replicationcontrollers "
                f"and jobs, not {target.resource}"
            )
        names = names_by_resource.setdefault(target.resource, [])
        if target.name not in names:
            names.append(target.name)
    pinned = {"replicas": replicas} if replicas is not None else {}
    return [
        _action(verb=verb, resource=resource, names=names, **pinned)
        for resource, names in names_by_resource.items()
    ]


def _action(**fields: Any) -> RequestedAction:
    try:
        return RequestedAction.model_validate(fields)
    except ValidationError as error:
        raise RequestError(wire.first_error(error)) from error


def random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def user_slug(user: str) -> str:
    """`alice@example.com` → `alice`; `system:serviceaccount:ci:deployer` → `deployer`."""
    local = user.rsplit(":", 1)[-1].split("@", 1)[0]
    return _slug(local) or "user"


def _slug(text: str) -> str:
    return _NOT_NAME.sub("-", text.lower()).strip("-")


def generated_name(user: str, action: RequestedAction, suffix: str) -> str:
    """A readable unique name: `alice-exec-web-0-x7k2`, at most 63 characters."""
    target = action.names[0] if action.names else action.effective_resource.split(".")[0]
    head = "-".join(part for part in (user_slug(user), action.verb, _slug(target)) if part)
    head = head[: _MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def build_request(
    *,
    name: str,
    namespace: str,
    actions: Sequence[RequestedAction],
    duration: str | None,
    reason: str,
    ticket: str | None,
    break_glass: bool,
    max_uses: int | None = None,
    start_at: dt.datetime | None = None,
    extends: str | None = None,
) -> AccessRequest:
    """The AccessRequest to create; `requester` is left out, as the webhook stamps it."""
    try:
        spec = AccessRequestSpec(
            actions=list(actions),
            duration=duration,
            reason=reason,
            ticket=ticket,
            break_glass=break_glass,
            max_uses=max_uses,
            start_at=start_at,
            extends=RequestName(name=extends) if extends else None,
        )
        return AccessRequest(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)
    except ValidationError as error:
        raise RequestError(wire.first_error(error)) from error


def creation_body(request: AccessRequest) -> dict[str, Any]:
    """The JSON to POST: metadata and spec only, since status belongs to the operator."""
    body = request.to_wire()
    body.pop("status", None)
    metadata = {key: value for key, value in body["metadata"].items() if value not in ({}, [])}
    body["metadata"] = metadata
    return body


def parse_request(raw: dict[str, Any]) -> AccessRequest:
    """An AccessRequest as served, ignoring top-level fields the models do not describe."""
    request = wire.read(AccessRequest, raw)
    if isinstance(request, wire.Unreadable):
        raise RequestError(str(request))
    return request


def approval_patch(raw: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch appending one decision to `status.approvals`, creating the list if absent.

    Creating the list is guarded by a `test` of the resourceVersion: an `add` of the list over
    one another approver just created would silently replace their decision.
    """
    status = raw.get("status")
    operations: list[dict[str, Any]] = []
    if not isinstance(status, dict) or not isinstance(status.get("approvals"), list):
        version = (raw.get("metadata") or {}).get("resourceVersion")
        if version:
            operations.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
        if not isinstance(status, dict):
            operations.append({"op": "add", "path": "/status", "value": {}})
        operations.append({"op": "add", "path": "/status/approvals", "value": []})
    operations.append({"op": "add", "path": "/status/approvals/-", "value": entry})
    return operations


def request_namespace(verb: Verb, targets: Sequence[Target], given: str | None) -> str | None:
    """Where the request must live when the action decides it: an unprotect is asked for in
    the namespace it unprotects (an explicit -n naming another one is an error); None lets
    kubectl's usual namespace apply."""
    if verb != UNPROTECT_VERB:
        return None
    namespace = targets[0].name
    if given is not None and given != namespace:
        raise RequestError(
            f"unprotect namespace/{namespace} is asked for in namespace {namespace}, not {given}"
        )
    return namespace
