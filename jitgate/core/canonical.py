"""Canonical JSON and digests: the same bytes for the same data, on every writer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

# One encoder for every call: `json.dumps` with options builds a new one each time, a
# noticeable share of the audit writer's work per record.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: stable input for hashes."""
    return _CANONICAL.encode(value).encode()


def digest(value: Any) -> str:
    """`sha256:<hex>` over the canonical JSON of a JSON-ready value or a pydantic model."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()
