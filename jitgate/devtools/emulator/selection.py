"""Label and field selectors (``?labelSelector=``, ``?fieldSelector=``) as predicates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

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


def selectors(params: Mapping[str, str]) -> dict[str, str | None]:
    """The selector query parameters, as keyword arguments of ``list_objects``."""
    return {
        "label_selector": params.get("labelSelector"),
        "field_selector": params.get("fieldSelector"),
    }
