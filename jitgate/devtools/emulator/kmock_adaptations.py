"""The one fix kmock 0.8 needs in its own module state: parsing ``/api/v1/namespaces`` URLs.

kmock mis-parses ``/api/v1/namespaces`` (500) and ``/api/v1/namespaces/NAME`` (as a namespace
with no resource). Namespaces are the only core objects whose URL looks like that. Nothing
changes when this module is imported: :class:`~jitgate.devtools.emulator.store.KubeEmulator`
calls :func:`adapt_kmock` when it is created. Every other difference from kmock's emulator is
an override in that subclass. kmock is pinned: this touches its internals.
"""

from __future__ import annotations

from typing import Any

from kmock._internal import parsing as _kmock_parsing


def adapt_kmock() -> None:
    """Make kmock parse namespace URLs as Kubernetes does (idempotent)."""
    if getattr(_kmock_parsing.parse_path, "original", None) is None:
        _parse_path.original = _kmock_parsing.parse_path  # type: ignore[attr-defined]
        _kmock_parsing.parse_path = _parse_path


def _parse_path(path: str) -> Any:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in {"status", "finalize"})
    ):
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 else None
        return _kmock_parsing.ParsedPath("", "v1", "namespaces", None, name, sub)
    return _parse_path.original(path)  # type: ignore[attr-defined]
