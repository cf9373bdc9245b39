# syntax=docker/dockerfile:1.7
# The jitgate image: one image runs `jitgate webhook` and `jitgate operator`; the Helm chart
# (charts/jitgate) refers to it as ghcr.io/jitgate/jitgate:<appVersion>. Built by `make image`
# (container/build-image.sh: Docker where an engine runs, else buildah; no heredocs, since the
# buildah of Debian bookworm does not read them).
#
# base:    PYTHON_IMAGE, the official slim Python 3.11 image where a registry is reachable, else
#          one made from Debian bookworm's packages (python3, python3-venv, ca-certificates) by
#          mmdebstrap; so `python3`, not `python`, is the interpreter both have.
# build:   a virtual environment from requirements.lock (every file checked against its hash),
#          then jitgate itself with --no-deps, then every distribution outside the closure of
#          `jitgate[server,postgres]` is removed: the lock also pins the demo and dev extras
#          (kmock, httpx, pytest, mypy, ruff, helm-python-sdk, ...), which the image never runs.
#          The locked wheels are kept in a cache mount (pip download skips those it has), so
#          a rebuild downloads nothing again. A machine whose egress re-signs TLS passes its
#          CA bundle as the build secret `ca-bundle`; both are mounted for pip only and never
#          stored in a layer.
# runtime: the slim base, that environment, and nothing else; runs as 65532:65532 and works
#          with a read-only root filesystem (only /tmp is written, an emptyDir in the chart).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/jitgate/bin:$PATH
RUN python3 -m venv /opt/jitgate
WORKDIR /src

COPY requirements.lock ./
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,target=/var/cache/jitgate-wheels \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && pip download --quiet --require-hashes -r requirements.lock -d /var/cache/jitgate-wheels \
    && pip install --no-index --find-links /var/cache/jitgate-wheels \
       --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY jitgate ./jitgate
COPY operator ./operator
COPY webhook ./webhook
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && pip install --no-deps --no-cache-dir --no-compile .
# Out of /src from here on: its operator/ would shadow the standard library's `operator`.
WORKDIR /

# Keep only what `jitgate[server,postgres]` needs at run time: the closure of its requirements
# with those extras over the installed distributions' metadata. `--dry-run` prints what would go.
COPY container/prune-to-extras.py /tmp/prune-to-extras.py
RUN python -I /tmp/prune-to-extras.py server postgres \
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
