"""Selecting records and laying them out as table rows, CSV or JSON. Pure."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jitgate.audit.model import AuditRecord

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
    "subresource",
    "container",
    "command",
    "replicasOld",
    "replicasNew",
    "actionDetail",
    "request",
    "grant",
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
    set or their type is asked for.
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
        )


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
        reason.replace("\n", " "),
    )


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def csv_row(data: Mapping[str, Any]) -> list[str]:
    """A flat CSV row from the stored record; nested values are JSON in their cell."""
    actor = data.get("actor") if isinstance(data.get("actor"), Mapping) else {}
    action = data.get("action") if isinstance(data.get("action"), Mapping) else {}
    assert isinstance(actor, Mapping) and isinstance(action, Mapping)
    replicas = action.get("replicas") if isinstance(action.get("replicas"), Mapping) else {}
    assert isinstance(replicas, Mapping)
    detail = {k: v for k, v in action.items() if k not in _ACTION_FIELDS}
    groups = actor.get("groups")
    values: dict[str, Any] = {
        **{k: data.get(k) for k in CSV_COLUMNS},
        "user": actor.get("user"),
        "groups": ";".join(map(str, groups)) if isinstance(groups, list) else groups,
        "verb": action.get("verb"),
        "resource": action.get("resource"),
        "name": action.get("name"),
        "subresource": action.get("subresource"),
        "container": action.get("container"),
        "command": _json(action.get("command")),
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
