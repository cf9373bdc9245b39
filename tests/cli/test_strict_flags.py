"""Both programs refuse a single-valued flag given twice (exit 2, one sentence) instead of
quietly keeping the last one: run as users run them, `kubectl jit` through the real kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # the venv's bin: `kubectl-jit` and `jitgate`


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env=env
    )  # fmt: skip


@pytest.mark.kubectl
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-n", "prod", "list", "-n", "staging"], "-n/--namespace was given twice"),
        (["list", "--namespace", "prod", "-n", "staging"], "-n/--namespace was given twice"),
        (["list", "--context", "a", "--context", "b"], "--context was given twice"),
        (["request", "exec", "web-0", "--reason", "a", "--reason", "b"], "--reason was given"),
        (["approve", "fix", "-m", "ok", "-m", "fine"], "-m/--message was given twice"),
    ],
)
def test_kubectl_jit_refuses_a_flag_given_twice(argv: list[str], named: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("the real kubectl binary is not installed")
    result = run(kubectl, "jit", *argv)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and named in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify", "--audit", "file:///a", "--audit", "file:///b"],
        ["audit", "report", "--audit", "file:///a", "--since", "1d", "--since", "2d"],
        ["webhook", "--port", "8443", "--port", "9443"],
    ],
)
def test_jitgate_refuses_a_flag_given_twice(argv: list[str]) -> None:
    result = run(str(BIN / "jitgate"), *argv)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert "was given twice" in line and line.endswith("give it once.")
