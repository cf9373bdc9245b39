"""PATCH bodies applied as the API server does: JSON patch, merge patch, strategic as merge."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch

from jitgate.devtools.emulator.errors import ApiError

# Content types of PATCH requests, by the patch type they carry.
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge patch; ``strategic`` only drops the ``$directives``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


def apply_patch(base: Any, patch: Any, patch_type: str) -> Any:
    """``base`` patched; a failed JSON-patch ``test`` is 422 Invalid, as in Kubernetes."""
    if patch_type == "json":
        try:
            return jsonpatch.apply_patch(base, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            message = f"the server rejected our request due to an error in our request: {e}"
            raise ApiError(422, "Invalid", message) from e
    if patch_type in {"merge", "strategic"}:
        return merge_patch(base, patch, strategic=patch_type == "strategic")
    raise ApiError(415, "UnsupportedMediaType", f"{patch_type} patches are not supported")
