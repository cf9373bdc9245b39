"""plugins/jit.yaml is a valid krew Plugin manifest for the archive plugins/krew_archive.py
builds (krew's own validation rules, checked here since krew cannot fetch it on this machine)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = yaml.safe_load((REPO / "plugins" / "jit.yaml").read_text())
PLUGIN_FIELDS = {
    "version", "homepage", "shortDescription", "description", "caveats", "platforms",
}  # fmt: skip


def built_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "kubectl-jit.tar.gz"
    subprocess.run(
        [sys.executable, str(REPO / "plugins" / "krew_archive.py"), str(archive)], check=True
    )
    return archive


def test_the_manifest_has_krews_shape() -> None:
    assert MANIFEST["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert MANIFEST["kind"] == "Plugin"
    assert MANIFEST["metadata"] == {"name": "jit"}  # `kubectl jit`, binary kubectl-jit
    spec = MANIFEST["spec"]
    assert set(spec) <= PLUGIN_FIELDS
    assert {"version", "shortDescription", "platforms"} <= set(spec)
    assert len(spec["shortDescription"]) <= 50
    for platform in spec["platforms"]:
        assert set(platform) <= {"selector", "uri", "sha256", "bin", "files"}
        assert platform["uri"].startswith("https://")
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["bin"] == "kubectl-jit"
        for expression in platform["selector"]["matchExpressions"]:
            assert expression["operator"] in ("In", "NotIn", "Exists", "DoesNotExist")
        for entry in platform["files"]:
            assert set(entry) == {"from", "to"}


def test_the_version_is_the_packages() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M)
    assert version is not None
    assert MANIFEST["spec"]["version"] == f"v{version.group(1)}"
    for platform in MANIFEST["spec"]["platforms"]:
        assert f"/v{version.group(1)}/" in platform["uri"]


def test_the_archive_builds_reproducibly_to_the_manifests_sha256(tmp_path: Path) -> None:
    archive = built_archive(tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert {p["sha256"] for p in MANIFEST["spec"]["platforms"]} == {digest}
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for platform in MANIFEST["spec"]["platforms"]:
        assert platform["bin"] in members
        assert members[platform["bin"]].mode & 0o111, "the plugin must be executable"


def test_the_launcher_runs_the_installed_client(tmp_path: Path) -> None:
    # The launcher finds the client in the first Python that has it: this virtual environment.
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = subprocess.run(
        [str(REPO / "plugins" / "kubectl-jit"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "request" in result.stdout
