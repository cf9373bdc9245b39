#!/usr/bin/env bash
# Build the jitgate image (`make image`), then print where it came from, its size and the
# Python distributions it holds.
#
#   engine: Docker where a Docker engine answers, else buildah (the image then lives in
#           podman's storage, driver vfs: no overlay mounts or fuse here). podman and buildah
#           run their containers with runc and two --ulimit flags, as machines without
#           CAP_SYS_RESOURCE need.
#   base:   the official python:3.11-slim-bookworm where a registry answers; otherwise Debian
#           bookworm's own packages, bootstrapped by mmdebstrap and imported once as
#           localhost/jitgate-base:bookworm-<recipe hash> (kept, so rebuilds skip it; delete
#           that image to refresh the base's security updates).
#   cache:  the locked wheels are kept in a build cache mount, so a rebuild does not download
#           them again (layers are not cached: vfs would copy the whole tree for each);
#           an image whose label says it was built from the same files on the same base is
#           not built again at all (JITGATE_REBUILD=1 builds anyway).
#
# Environment: JITGATE_IMAGE (the tag; default ghcr.io/jitgate/jitgate:<version>),
# JITGATE_BASE=auto|registry|debian (default auto), JITGATE_REBUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(grep -m1 '^version' pyproject.toml | cut -d'"' -f2)
IMAGE=${JITGATE_IMAGE:-ghcr.io/jitgate/jitgate:$VERSION}
BASE_MODE=${JITGATE_BASE:-auto}
REGISTRY_BASE=docker.io/library/python:3.11-slim-bookworm
DEBIAN_SUITE=bookworm
DEBIAN_PACKAGES=python3,python3-venv,ca-certificates
DEBIAN_MIRROR=http://deb.debian.org
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
PODMAN=(podman --storage-driver vfs)
BUILDAH=(buildah --storage-driver vfs)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
# One build at a time on a machine: concurrent vfs builds of one tag would race and thrash.
LOCK=${TMPDIR:-/tmp}/jitgate-image-build.lock

say() { echo "make image: $*" >&2; }
started=$(date +%s)

CONTEXT_LABEL=dev.jitgate.build.context

# What the build reads (the files .dockerignore lets in, the Dockerfile) and the base (its
# reference and, where known, its image id: a refreshed base rebuilds), hashed.
context_hash() {
    {
        echo "$1"
        find Dockerfile .dockerignore requirements.lock pyproject.toml README.md jitgate \
            operator webhook container/prune-to-extras.py -type f \
            ! -path '*/__pycache__/*' ! -name '*.py[cod]' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
}

secret_args() {
    if [[ -s $CA_BUNDLE ]]; then echo "--secret=id=ca-bundle,src=$CA_BUNDLE"; fi
}

# The Debian base: minbase + python3 (3.11 in bookworm, the lock's version), venv and CA
# certificates, with security updates, without documentation (copyright files kept).
debian_base() {
    local recipe key tag workdir
    recipe="$DEBIAN_SUITE $DEBIAN_PACKAGES minbase nodocs-v1"
    key=$(echo "$recipe" | sha256sum | cut -c1-12)
    tag=localhost/jitgate-base:$DEBIAN_SUITE-$key
    if "${PODMAN[@]}" image exists "$tag"; then
        echo "$tag"
        return
    fi
    command -v mmdebstrap >/dev/null || { say "mmdebstrap is not installed"; exit 2; }
    say "bootstrapping the Debian $DEBIAN_SUITE base with mmdebstrap (once per machine)"
    workdir=$(mktemp -d)
    mmdebstrap --quiet --variant=minbase --include="$DEBIAN_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        "$DEBIAN_SUITE" "$workdir/base.tar" \
        "deb $DEBIAN_MIRROR/debian $DEBIAN_SUITE main" \
        "deb $DEBIAN_MIRROR/debian $DEBIAN_SUITE-updates main" \
        "deb $DEBIAN_MIRROR/debian-security $DEBIAN_SUITE-security main" >&2
    "${PODMAN[@]}" import --quiet \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        "$workdir/base.tar" "$tag" >/dev/null
    rm -rf "$workdir"
    echo "$tag"
}

# Where the base comes from: a registry if one answers (or is asked for), else Debian.
choose_base() {
    if [[ $BASE_MODE != debian ]] && "${PODMAN[@]}" pull --quiet "$REGISTRY_BASE" >/dev/null 2>&1; then
        echo "$REGISTRY_BASE"
    elif [[ $BASE_MODE == registry ]]; then
        say "the registry base $REGISTRY_BASE cannot be pulled"
        exit 2
    else
        debian_base
    fi
}

report() {
    local run=("$@")
    say "packages (Python distributions in /opt/jitgate):"
    "${run[@]}" --rm --read-only --user 65532:65532 --network none \
        --entrypoint /opt/jitgate/bin/python "$IMAGE" -I -c '
from importlib.metadata import distributions
for name, version in sorted({(d.metadata["Name"].lower(), d.version) for d in distributions()}):
    print(f"  {name}=={version}")'
}

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    base=$(grep -m1 '^ARG PYTHON_IMAGE=' Dockerfile | cut -d= -f2)
    say "building $IMAGE with Docker"
    DOCKER_BUILDKIT=1 docker build $(secret_args) --label "$CONTEXT_LABEL=$(context_hash "$base")" \
        -t "$IMAGE" .
    report docker run
    size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
else
    for tool in podman buildah runc; do
        command -v "$tool" >/dev/null || {
            say "no Docker engine, and $tool is not installed (apt-get install podman buildah runc mmdebstrap)"
            exit 2
        }
    done
    exec 9>"$LOCK"
    flock 9
    base=$(choose_base)
    context=$(context_hash "$base $("${PODMAN[@]}" image inspect --format '{{.Id}}' "$base")")
    built=$("${PODMAN[@]}" image inspect --format "{{index .Labels \"$CONTEXT_LABEL\"}}" \
        "$IMAGE" 2>/dev/null || true)
    if [[ $built == "$context" && -z ${JITGATE_REBUILD:-} ]]; then
        say "$IMAGE is up to date (built from these files on $base)"
    else
        previous=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
        say "building $IMAGE with buildah on $base"
        "${BUILDAH[@]}" bud --quiet --no-cache --force-rm --network host "${ULIMITS[@]}" $(secret_args) \
            --build-arg PYTHON_IMAGE="$base" --label "$CONTEXT_LABEL=$context" \
            -t "$IMAGE" -f Dockerfile . >/dev/null
        current=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE")
        if [[ -n $previous && $previous != "$current" ]]; then
            # vfs keeps every layer as a full copy: drop the image this build replaced.
            "${PODMAN[@]}" rmi "$previous" >/dev/null 2>&1 || true
        fi
    fi
    report "${PODMAN[@]}" --runtime runc run "${ULIMITS[@]}"
    size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
fi
say "$IMAGE from $base, ready in $(($(date +%s) - started)) s; size $((size / 1000000)) MB"
