"""A write to one of jitgate's kinds as the admission rules see it, and reading its objects.

The objects arrive as the client sent them, before any schema check, so every reader here
tolerates any JSON shape; the rules refuse what they cannot read with a clear message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jitgate.core.refusals import Refusal

JsonPatch = list[dict[str, Any]]
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


# The userInfo extra a jitgate channel sets when it acts as an approver by impersonation
# (`Impersonate-Extra-jitgate.dev%2Fvia: slack`): only who may impersonate with it can.
VIA_EXTRA = "jitgate.dev/via"
VIA_CHANNELS = frozenset({"slack"})


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]
    via: str | None = None  # a channel in VIA_CHANNELS, from the authenticated userInfo extra


def via_of(extra: Mapping[str, Any] | None) -> str | None:
    """The channel an authenticated userInfo says the caller acts through, if one jitgate
    knows (any other value is ignored: it cannot make a decision look like it came from
    somewhere)."""
    values = (extra or {}).get(VIA_EXTRA)
    if isinstance(values, list) and len(values) == 1 and values[0] in VIA_CHANNELS:
        return str(values[0])
    return None


@dataclass(frozen=True)
class Write:
    """One admission of a write: who makes it, and the object before and after."""

    operation: Operation
    who: Identity
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    annotations = as_dict(as_dict(obj).get("metadata")).get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {str(key): value for key, value in annotations.items() if isinstance(value, str)}


def approvals_of(obj: Mapping[str, Any] | None) -> list[Any]:
    approvals = as_dict(as_dict(obj).get("status")).get("approvals")
    return approvals if isinstance(approvals, list) else []


def check_metadata(obj: Mapping[str, Any] | None) -> Refusal | None:
    """Annotations are where identities are stamped, so they must at least be strings."""
    metadata = as_dict(obj).get("metadata", {})
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or not (
        annotations is None
        or (isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values()))
    ):
        return Refusal("metadata.annotations must map names to strings", "Invalid")
    return None
