"""Selecting records and laying them out as table rows, CSV or JSON. Pure."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jitgate.audit.model import AuditRecord
from jitgate.core.vocabulary import PODS

TABLE_COLUMNS: Final = (
    "TIME",
    "WRITER",
    "SEQ",
    "TYPE",
    "USER",
    "NAMESPACE",
    "ACTION",
    "REQUEST",
    "GRANT",
    "APPROVERS",
    "REASON",
)
CSV_COLUMNS: Final = (
    "time",
    "writer",
    "seq",
    "type",
    "user",
    "groups",
    "namespace",
    "verb",
    "resource",
    "name",
    "target",
    "subresource",
    "container",
    "command",
    "replicasOld",
    "replicasNew",
    "actionDetail",
    "request",
    "grant",
    "session",
    "ticket",
    "approvers",
    "admissionUID",
    "dryRun",
    "reason",
    "context",
    "prev",
    "hash",
    "mac",
)
_ACTION_FIELDS: Final = frozenset(
    {"verb", "resource", "name", "subresource", "container", "command", "replicas"}
)


@dataclass(frozen=True)
class Selection:
    """Record filters; each tuple is any-of, and an empty tuple matches everything.

    A type ending in `.*` matches the prefix: `request.*`. The writer's own records
    (`audit.sealed`, `audit.pruned`, `audit.recovered`) are left out unless `internal` is
    set or their type is asked for. `objects` are (plural resource, name) pairs an action
    record's target must be one of (`("pods", "web-0")`): records without an action never
    match them.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    users: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    objects: tuple[tuple[str, str], ...] = ()
    sessions: tuple[str, ...] = ()
    internal: bool = False

    def type_matches(self, kind: str) -> bool:
        if not self.types:
            return self.internal or not kind.startswith("audit.")
        return any(kind.startswith(t[:-1]) if t.endswith(".*") else kind == t for t in self.types)

    def matches(self, record: AuditRecord) -> bool:
        if self.since is not None or self.until is not None:
            when = record.when
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when >= self.until:
                return False
        return (
            self.type_matches(record.type)
            and _any(self.users, record.user)
            and _any(self.namespaces, record.namespace)
            and _any(self.verbs, record.action.verb if record.action else None)
            and _any(self.grants, record.grant)
            and _any(self.requests, record.request)
            and _any(self.writers, record.writer)
            and _any(self.sessions, record.session)
            and self._object_matches(record)
        )

    def _object_matches(self, record: AuditRecord) -> bool:
        if not self.objects:
            return True
        action = record.action
        return action is not None and (action.resource or "", action.name or "") in self.objects


def _any(wanted: Sequence[str], value: str | None) -> bool:
    return not wanted or value in wanted


def describe_action(record: AuditRecord) -> str:
    """`exec pods/web-0 -c app -- sh`, `scale deployments.apps/web 3->5`: the kubectl view."""
    action = record.action
    if action is None:
        return ""
    target = "/".join(part for part in (action.resource, action.name) if part)
    text = f"{action.verb} {target}".strip()
    if action.container:
        text += f" -c {action.container}"
    if action.command:
        text += " -- " + " ".join(action.command)
    if action.replicas is not None:
        text += f" {_count(action.replicas.old)}->{_count(action.replicas.new)}"
    return text


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def table_row(record: AuditRecord, *, reason_width: int = 40) -> tuple[str, ...]:
    reason = record.reason or ""
    if len(reason) > reason_width:
        reason = reason[: reason_width - 1] + "…"
    return (
        record.time,
        record.writer,
        str(record.seq),
        record.type + (" (dry run)" if record.dry_run else ""),
        record.user or "",
        record.namespace or "",
        describe_action(record),
        record.request or "",
        record.grant or "",
        ",".join(approvers(record.context or {})),
        reason.replace("\n", " "),
    )


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _joined(values: Any) -> str | None:
    """A list as one `;`-separated cell, as `groups` are."""
    return ";".join(map(str, values)) if isinstance(values, list) and values else None


def _targets(action: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """What the record is about, as `resource/name`: an action's object, or the objects a
    request's or grant's actions name (`resource/*` for any)."""
    if action.get("name"):
        return f"{action.get('resource') or PODS}/{action['name']}"
    asked = context.get("actions", _mapping(context.get("spec")).get("actions"))
    targets = []
    for each in asked if isinstance(asked, list) else []:
        if isinstance(each, Mapping):
            resource = each.get("resource") or PODS
            names = each.get("names") if isinstance(each.get("names"), list) else None
            targets += [f"{resource}/{name}" for name in names or ["*"]]
    return ";".join(dict.fromkeys(targets)) or None


def approvers(context: Mapping[str, Any]) -> tuple[str, ...]:
    """Who approved: an action record's `approvers` (logs before they existed have none), or
    the approving users of a grant record's chain."""
    if isinstance(context.get("approvers"), list):
        return tuple(map(str, context["approvers"]))
    chain = context.get("approvals")
    return tuple(
        str(each["user"])
        for each in (chain if isinstance(chain, list) else [])
        if isinstance(each, Mapping) and each.get("decision") == "Approve" and each.get("user")
    )


def csv_row(data: Mapping[str, Any]) -> list[str]:
    """A flat CSV row from the stored record: one value a cell (lists `;`-separated, a
    command as the shell would read it); what has no column of its own is JSON in
    `actionDetail` and `context`."""
    actor = _mapping(data.get("actor"))
    action = _mapping(data.get("action"))
    context = _mapping(data.get("context"))
    replicas = _mapping(action.get("replicas"))
    detail = {k: v for k, v in action.items() if k not in _ACTION_FIELDS}
    command = action.get("command")
    values: dict[str, Any] = {
        **{k: data.get(k) for k in CSV_COLUMNS},
        "user": actor.get("user"),
        "groups": _joined(actor.get("groups")),
        "verb": action.get("verb"),
        "resource": action.get("resource"),
        "name": action.get("name"),
        "target": _targets(action, context),
        "subresource": action.get("subresource"),
        "container": action.get("container"),
        "command": shlex.join(map(str, command)) if isinstance(command, list) else command,
        "ticket": context.get("ticket", _mapping(context.get("spec")).get("ticket")),
        "approvers": ";".join(approvers(context)) or None,
        "replicasOld": replicas.get("old"),
        "replicasNew": replicas.get("new"),
        "actionDetail": _json(detail or None),
        "context": _json(data.get("context")),
    }
    return [_cell(values[column]) for column in CSV_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _json(value)
    return str(value)
