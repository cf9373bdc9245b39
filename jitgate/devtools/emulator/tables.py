"""``kubectl get`` tables (``Accept: ...;as=Table``), with a CRD's ``additionalPrinterColumns``."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]
# What kubectl shows for a kind that declares no columns.
DEFAULT_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


# A filter on one field's value, as conditions columns use: [?(@.type=="Ready")]
_FILTER = re.compile(r"""\[\?\(@\.(\w+)\s*==\s*["'](.*)["']\)\]""")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The tiny JSONPath subset printer columns use: ``.a.b``, ``.a[*].b``, ``.a[0]``,
    ``.a[?(@.k=="v")].b``."""
    values = [obj]
    for token in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path.strip().strip("{}")):
        nxt: list[Any] = []
        for value in values:
            wanted = _FILTER.fullmatch(token)
            if wanted is not None:
                if isinstance(value, list):
                    key, expected = wanted.groups()
                    nxt.extend(
                        v for v in value if isinstance(v, Mapping) and v.get(key) == expected
                    )
            elif token.startswith("["):
                if isinstance(value, list):
                    index = token[1:-1]
                    nxt.extend(value if index == "*" else value[int(index) : int(index) + 1])
            elif isinstance(value, Mapping) and token in value:
                nxt.append(value[token])
        values = nxt
    return values


def human_age(timestamp: str) -> str:
    """Kubernetes' ``HumanDuration`` of the time since ``timestamp``."""
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    s = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 730 else f"{d // 365}y"


def table(columns: Sequence[Mapping[str, Any]], objs: Sequence[Obj], rv: str) -> Obj:
    """A ``meta.k8s.io/v1`` Table of ``objs``: the name, then ``columns`` (or the age)."""
    columns = columns or DEFAULT_COLUMNS
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0}]
    definitions += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = []
    for obj in objs:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in columns:
            values = jsonpath(obj, column["jsonPath"])
            if column.get("type") == "date" and values:
                cells.append(human_age(str(values[0])))
            elif len(values) == 1:
                cells.append(values[0])
            else:
                cells.append(",".join(str(v) for v in values) if values else None)
        meta = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }
        rows.append({"cells": cells, "object": meta})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions,
        "rows": rows,
    }
