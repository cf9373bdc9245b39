"""The Dockerfile builds the image the chart refers to, the way the chart runs it.

This checks the Dockerfile's text against what the chart relies on, and runs its
development-dependency pruning script against this virtual environment (which holds the same
lock file) in dry-run mode. tests/image builds the image and runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
DOCKERIGNORE = (REPO / ".dockerignore").read_text()
PRUNE_SCRIPT = "container/prune-to-extras.py"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    out: list[tuple[str, str]] = []
    lines = iter(DOCKERFILE.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            found.append([])
        if found:
            found[-1].append((word, rest))
    return found


def test_multi_stage_on_slim_python_311() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, re.M)
    build, runtime = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/jitgate /opt/jitgate"], "runtime gets only the venv"


def test_lock_file_with_hashes_then_the_package_without_dependencies() -> None:
    runs = [rest for word, rest in stages()[0] if word == "RUN"]
    lock = next(i for i, r in enumerate(runs) if "requirements.lock" in r)
    assert "--require-hashes" in runs[lock]
    package = next(i for i, r in enumerate(runs) if re.search(r"pip install --no-deps .* \.$", r))
    assert lock < package


def test_runs_as_65532_with_the_jitgate_entrypoint() -> None:
    runtime = stages()[-1]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == ["65532:65532"]
    assert ("ENTRYPOINT", '["jitgate"]') in runtime
    assert "--uid 65532" in DOCKERFILE and "--gid 65532" in DOCKERFILE
    assert "HOME=/tmp" in DOCKERFILE  # the chart's only writable path is the /tmp emptyDir
    assert "EXPOSE 8443 8080" in DOCKERFILE


def test_the_chart_default_image_is_what_make_image_tags() -> None:
    chart = yaml.safe_load((REPO / "charts" / "jitgate" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "jitgate" / "values.yaml").read_text())
    build = (REPO / "container" / "build-image.sh").read_text()
    assert values["image"]["repository"] == "ghcr.io/jitgate/jitgate"
    assert values["image"]["tag"] == ""  # appVersion
    assert "IMAGE=${JITGATE_IMAGE:-ghcr.io/jitgate/jitgate:$VERSION}" in build
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'^version = "{re.escape(chart["appVersion"])}"$', pyproject, re.M)


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [line for line in DOCKERIGNORE.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith(("--from", "<<")):
            copied.update(rest.split()[:-1])
    assert copied <= allowed
    assert {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "jitgate",
        "operator",
        "webhook",
        PRUNE_SCRIPT,
    } == (allowed)


def test_no_heredocs_since_the_buildah_of_debian_bookworm_cannot_read_them() -> None:
    assert not re.search(r"<<-?'?\w+'?", DOCKERFILE)


def test_pruning_keeps_the_server_closure_and_drops_demo_and_development_tools(
    tmp_path: Path,
) -> None:
    (target,) = [
        rest.split()[1] for word, rest in stages()[0] if word == "COPY" and PRUNE_SCRIPT in rest
    ]
    runs = [rest for word, rest in stages()[0] if word == "RUN"]
    prune = next(r for r in runs if target in r)
    extras = re.search(rf"python -I {re.escape(target)} ([\w ]+?) &&", prune)
    assert extras and extras.group(1).split() == ["server", "postgres"]
    script = tmp_path / "prune-to-extras.py"
    script.write_text((REPO / PRUNE_SCRIPT).read_text())
    # -I keeps the script's directory and the repository (whose operator/ would shadow the
    # standard library) off sys.path, exactly as the Dockerfile runs it.
    result = subprocess.run(
        [sys.executable, "-I", str(script), *extras.group(1).split(), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    removed = set(result.stdout.split())
    for dev in (
        "pytest",
        "mypy",
        "ruff",
        "hypothesis",
        "helm-python-sdk",
        "kubernetes-validate",
        "import-linter",
        "kmock",
        "httpx",
    ):
        assert dev in removed
    for runtime in (
        "kopf",
        "kubernetes",
        "fastapi",
        "uvicorn",
        "pydantic",
        "psycopg",
        "psycopg-binary",
        "prometheus-client",
        "watchfiles",
        "pyyaml",
        "cryptography",
        "jitgate",
        "pip",
    ):
        assert runtime not in removed
