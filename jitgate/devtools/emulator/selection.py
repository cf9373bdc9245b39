"""Label and field selectors (``?labelSelector=``, ``?fieldSelector=``) as predicates, and
list pages (``?limit=``, ``?continue=``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jitgate.devtools.emulator.errors import ApiError

Obj = dict[str, Any]


def selector(expr: str | None, *, fields: bool) -> Callable[[Obj], bool]:
    """A predicate for a label selector or (``fields=True``) a field selector."""
    checks: list[Callable[[Obj], bool]] = []
    for term in re.split(r",(?![^(]*\))", expr or ""):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s*\(([^)]*)\)", term):
            key, op, vals = m[1], m[2], {v.strip() for v in m[3].split(",")}
        elif m := re.fullmatch(r"([^!=]+?)\s*(==|!=|=)\s*(.*)", term):
            key, op, vals = m[1], m[2], {m[3].strip()}
        else:
            key, op, vals = term.lstrip("!"), "absent" if term.startswith("!") else "exists", set()

        def get(obj: Obj, key: str = key) -> str | None:
            if not fields:
                return obj.get("metadata", {}).get("labels", {}).get(key)  # type: ignore[no-any-return]
            value: Any = obj
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            return None if value is None else str(value)

        def check(obj: Obj, op: str = op, vals: set[str] = vals, get: Any = get) -> bool:
            value = get(obj)
            if op in {"=", "==", "in"}:
                return value in vals or (fields and value is None and "" in vals)
            if op in {"!=", "notin"}:
                return value not in vals
            return (value is not None) == (op == "exists")

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)


def paged(listing: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    """One page of a ``...List`` as ``limit`` and ``continue`` ask, in the API server's order
    (namespace, then name); the continue token is the offset of the next page."""
    limit, token = params.get("limit"), params.get("continue")
    if not limit and not token:
        return listing
    if (limit and not limit.isdigit()) or (token and not token.isdigit()):
        raise ApiError(400, "BadRequest", "limit and continue must be non-negative integers")
    items = sorted(
        listing["items"],
        key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]),
    )
    start = int(token or 0)
    end = start + int(limit) if limit and int(limit) > 0 else len(items)
    metadata = dict(listing["metadata"])
    if end < len(items):
        metadata |= {"continue": str(end), "remainingItemCount": len(items) - end}
    return {**listing, "metadata": metadata, "items": items[start:end]}


def selectors(params: Mapping[str, str]) -> dict[str, str | None]:
    """The selector query parameters, as keyword arguments of ``list_objects``."""
    return {
        "label_selector": params.get("labelSelector"),
        "field_selector": params.get("fieldSelector"),
    }
