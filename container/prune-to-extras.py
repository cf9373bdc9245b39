"""Uninstall every distribution `jitgate` with the extras given as arguments does not need."""

import subprocess
import sys
from importlib.metadata import distributions

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

KEEP_ALWAYS = {"pip"}  # removed last, by the Dockerfile


def runtime_closure(extras: frozenset[str], root: str = "jitgate") -> set[str]:
    installed = {canonicalize_name(d.metadata["Name"]): d for d in distributions()}
    needed: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(canonicalize_name(root), extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name not in installed:
            continue
        seen.add((name, extras))
        needed.add(name)
        for spec in installed[name].requires or []:
            req = Requirement(spec)
            active = extras | {""}
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in active):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def main() -> int:
    extras = frozenset(arg for arg in sys.argv[1:] if not arg.startswith("--"))
    installed = {canonicalize_name(d.metadata["Name"]) for d in distributions()}
    needed = runtime_closure(extras)
    if "jitgate" not in needed:
        sys.exit("jitgate is not installed")
    remove = sorted(installed - needed - KEEP_ALWAYS)
    if "--dry-run" in sys.argv:
        print("\n".join(remove))
        return 0
    if remove:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", *remove], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
