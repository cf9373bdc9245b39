"""jitgate's kinds as tests write them: AccessPolicy, AccessRequest and Grant builders.

Each builder returns the object as the API server stores it (a dict with `apiVersion`, `kind`,
`metadata`, `spec`); the `*_model` variants parse the same dict into `jitgate.core.api`
models. Defaults describe one story every tier shares: alice (developers) asks to exec into
`prod/web-0` under the `production` policy, which SREs approve. Keyword arguments name spec
fields in the API's own camelCase and replace the default outright. Every call returns a
fresh object (arguments are copied), so a test may change what it gets.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from support.clocks import NOW
from support.personas import ALICE, BOB

from jitgate.core.api import API_VERSION, AccessPolicy, AccessRequest, Grant
from jitgate.core.clock import format_time
from jitgate.core.grants import LABEL_REQUEST, LABEL_USER, user_label

Obj = dict[str, Any]

PROTECTED_LABELS = {"jitgate.dev/protected": "true"}
BY_PROTECTED_LABEL: Obj = {"selector": {"matchLabels": PROTECTED_LABELS}}
ALL_VERBS = ["exec", "attach", "portforward", "delete", "scale"]
REQUEST_UID = "3f1c0a4e-0000-4000-8000-000000000001"
EXEC_WEB_0: Obj = {"verb": "exec", "names": ["web-0"]}
REASON = "INC-1234: worker stuck"


def policy(name: str = "production", **spec: Any) -> Obj:
    """Exec, attach, port-forward, delete and scale of pods and deployments in `prod`,
    approved by the `sre` group."""
    body: Obj = {
        "namespaces": {"names": ["prod"]},
        "actions": list(ALL_VERBS),
        "resources": ["pods", "deployments.apps"],
        "approvers": {"groups": ["sre"]},
        **spec,
    }
    obj = {"apiVersion": API_VERSION, "kind": "AccessPolicy", "metadata": {"name": name}}
    return copy.deepcopy({**obj, "spec": body})


def policy_model(name: str = "production", **spec: Any) -> AccessPolicy:
    return AccessPolicy.model_validate(policy(name, **spec))


def access_request(
    name: str = "fix-web-0",
    namespace: str = "prod",
    *,
    metadata: Obj | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """alice's request to exec into web-0; `requester` only when given (the webhook stamps it,
    so a request as its author writes it has none)."""
    body: Obj = {"actions": [dict(EXEC_WEB_0)], "reason": REASON, **spec}
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
        "spec": body,
    }
    if status is not None:
        obj["status"] = status
    return copy.deepcopy(obj)


def access_request_model(
    name: str = "fix-web-0", namespace: str = "prod", **fields: Any
) -> AccessRequest:
    return AccessRequest.model_validate(access_request(name, namespace, **fields))


def requester(user: str = ALICE.name, groups: tuple[str, ...] = ALICE.groups) -> Obj:
    """`spec.requester` as the webhook stamps it."""
    return {"user": user, "groups": list(groups)}


def grant(
    name: str = "fix-web-0-x7k2",
    namespace: str = "prod",
    *,
    user: str = "alice",
    actions: list[Obj] | None = None,
    not_before: dt.datetime = NOW,
    expires_at: dt.datetime = NOW + dt.timedelta(minutes=15),
    request: str = "fix-web-0",
    request_uid: str = REQUEST_UID,
    approvals: list[Obj] | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    max_uses: int | None = None,
    metadata: Obj | None = None,
    status: Obj | None = None,
) -> Obj:
    """The grant the operator issues for alice's request: exec into web-0 for 15 minutes,
    labelled with its request and its user's digest (`reason` and `ticket` copied from the
    request; grants before they existed had none; `max_uses` as a one-time or N-use request
    asked)."""
    spec: Obj = {
        "user": user,
        "actions": actions or [dict(EXEC_WEB_0)],
        "notBefore": format_time(not_before),
        "expiresAt": format_time(expires_at),
        "accessRequest": {"name": request, "uid": request_uid},
        "policy": "production",
    }
    if approvals is not None:
        spec["approvals"] = approvals
    spec.update({k: v for k, v in (("reason", reason), ("ticket", ticket)) if v is not None})
    if max_uses is not None:
        spec["maxUses"] = max_uses
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": "Grant",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_REQUEST: request, LABEL_USER: user_label(user)},
            **(metadata or {}),
        },
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return copy.deepcopy(obj)


def grant_model(name: str = "fix-web-0-x7k2", namespace: str = "prod", **fields: Any) -> Grant:
    return Grant.model_validate(grant(name, namespace, **fields))


def approval(
    user: str = BOB.name,
    decision: str = "Approve",
    *,
    groups: tuple[str, ...] = BOB.groups,
    at: dt.datetime = NOW,
    comment: str | None = None,
    digest: str = "sha256:" + "0" * 64,
) -> Obj:
    """One entry of `status.approvals` (or a grant's `spec.approvals`) as the webhook stamps it."""
    entry: Obj = {"user": user, "groups": list(groups), "decision": decision}
    if comment is not None:
        entry["comment"] = comment
    entry["time"] = format_time(at)
    entry["specDigest"] = digest
    return entry


def pod(name: str, **labels: str) -> Obj:
    """A scheduled Pod of Deployment web's ReplicaSet in `prod`, as stored."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "prod",
            "uid": f"uid-{name}",
            "resourceVersion": "77",
            "labels": labels or {"app": "web"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d4b9c",
                    "uid": "rs-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], "nodeName": "worker-1"},
        "status": {"phase": "Running"},
    }
