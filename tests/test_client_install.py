"""A plain `pip install jitgate` is the light `kubectl jit` client, not the server stack.

Checked without a network: the installed distribution's metadata says what a plain install
asks for, and the closure of that over the distributions pinned in requirements.lock (whose
metadata this virtual environment holds) is what it would bring in.
"""

from __future__ import annotations

import re
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
# The server stack, and the kubernetes client (only the webhook uses it; it brings aiohttp).
SERVER_ONLY = frozenset(
    {
        "kopf", "fastapi", "starlette", "uvicorn", "aiohttp", "psycopg", "psycopg-binary",
        "kmock", "kubernetes",
    }
)  # fmt: skip


def base_requirements() -> list[Requirement]:
    """jitgate's requirements that apply with no extra."""
    requires = [Requirement(spec) for spec in distribution("jitgate").requires or []]
    return [req for req in requires if req.marker is None or req.marker.evaluate({"extra": ""})]


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", LOCK.read_text(), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def closure(roots: list[Requirement]) -> set[str]:
    """The distributions `roots` need, following the locked distributions' metadata."""
    needed: set[str] = set()
    todo = [(canonicalize_name(req.name), frozenset(req.extras)) for req in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        for spec in distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def test_a_plain_install_asks_for_no_server_package() -> None:
    names = {canonicalize_name(req.name) for req in base_requirements()}
    assert names, "jitgate's metadata lists no requirement at all"
    assert names & SERVER_ONLY == set()


def test_a_plain_install_brings_in_no_server_package() -> None:
    pins = locked()
    needed = closure(base_requirements())
    assert needed <= set(pins), "the lock file pins every distribution a plain install needs"
    for name in needed:
        assert distribution(name).version == pins[name], f"{name} is not installed as locked"
    assert needed & SERVER_ONLY == set()
