# syntax=docker/dockerfile:1.7
# The jitgate image: one image runs `jitgate webhook` and `jitgate operator`; the Helm chart
# (charts/jitgate) refers to it as ghcr.io/jitgate/jitgate:<appVersion>. Built by `make image`.
#
# build:   a virtual environment from requirements.lock (every file checked against its hash),
#          then jitgate itself with --no-deps, then every distribution outside the closure of
#          `jitgate[server,postgres]` is removed: the lock also pins the demo and dev extras
#          (kmock, httpx, pytest, mypy, ruff, helm-python-sdk, ...), which the image never runs.
# runtime: the slim base, that environment, and nothing else; runs as 65532:65532 and works
#          with a read-only root filesystem (only /tmp is written, an emptyDir in the chart).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/jitgate/bin:$PATH
RUN python -m venv /opt/jitgate
WORKDIR /src

COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY jitgate ./jitgate
COPY operator ./operator
COPY webhook ./webhook
RUN pip install --no-deps --no-compile .
# Out of /src from here on: its operator/ would shadow the standard library's `operator`.
WORKDIR /

# Keep only what `jitgate[server,postgres]` needs at run time: the closure of its requirements
# with those extras over the installed distributions' metadata. `--dry-run` prints what would go.
COPY <<'PRUNE' /tmp/prune-dev.py
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
PRUNE
RUN python -I /tmp/prune-dev.py server postgres \
    && python -m compileall -q /opt/jitgate/lib \
    && python -m pip uninstall -y pip \
    && jitgate --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="jitgate" \
      org.opencontainers.image.description="Just-in-time action approval for Kubernetes" \
      org.opencontainers.image.source="https://github.com/jitgate/jitgate" \
      org.opencontainers.image.licenses="Apache-2.0"
# A passwd entry for 65532: kopf names its peering identity after the user (getpass.getuser).
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin nonroot
COPY --from=build /opt/jitgate /opt/jitgate
ENV PATH=/opt/jitgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532
# 8443: the webhook's HTTPS (admission, /healthz, /readyz, /metrics); 8080: operator liveness.
EXPOSE 8443 8080
ENTRYPOINT ["jitgate"]
CMD ["--help"]
