"""Shell completion: the candidates each program offers, the scripts loaded into real shells,
and kubectl completing `kubectl jit <TAB>` through `kubectl_complete-jit`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jitgate.cli.completion import candidates
from jitgate.cli.jitgate.main import build_parser as jitgate_parser
from jitgate.cli.kubectl_jit.arguments import build_parser as jit_parser

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["re"], ["request", "review", "revoke"]),
        (["request", "s"], ["scale"]),
        (["list", "-o", ""], ["json", "yaml", "wide"]),
        (["list", "--output", "y"], ["yaml"]),
        (["-n", "prod", "wa"], ["wait"]),  # a flag's value is not a subcommand
        (["completion", ""], ["bash", "zsh", "fish"]),
        (["request", "exec", "web-0", "--", "l"], []),  # the exec command is the user's
    ],
)
def test_kubectl_jit_candidates(words: list[str], expected: list[str]) -> None:
    assert candidates(jit_parser(), words) == expected


def test_flags_of_the_subcommand_being_typed() -> None:
    flags = candidates(jit_parser(), ["request", "exec", "web-0", "--"])
    assert {"--for", "--reason", "--wait", "--timeout", "--break-glass"} <= set(flags)
    assert "--pending" not in flags
    assert candidates(jit_parser(), ["list", "--p"]) == ["--pending"]


def test_jitgate_candidates() -> None:
    assert candidates(jitgate_parser(), ["au"]) == ["audit"]
    assert "verify" in candidates(jitgate_parser(), ["audit", ""])


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=60, check=False)


@pytest.mark.parametrize("prog", ["kubectl-jit", "jitgate"])
def test_the_bash_script_loads_and_completes_subcommands(prog: str) -> None:
    function = "_" + prog.replace("-", "_") + "_complete"
    first = "re" if prog == "kubectl-jit" else "au"
    shell = (
        f"source <({prog} completion bash) && complete -p {prog} && "
        f"COMP_WORDS=({prog} {first}) && COMP_CWORD=1 && {function} && "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = run(["bash", "-c", shell])
    assert result.returncode == 0, result.stderr
    registered, *offered = result.stdout.splitlines()
    assert registered == f"complete -o default -F {function} {prog}"
    assert offered == (["request", "review", "revoke"] if prog == "kubectl-jit" else ["audit"])


def test_the_zsh_script_loads() -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    shell = "autoload -U compinit && compinit -u && source <(kubectl-jit completion zsh) && "
    shell += "print -r -- $_comps[kubectl-jit]"
    result = run(["zsh", "-c", shell])
    assert (result.returncode, result.stdout) == (0, "_kubectl_jit_complete\n"), result.stderr


def test_the_fish_script_loads_and_completes() -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    shell = "kubectl-jit completion fish | source; complete -C 'kubectl-jit re'"
    result = run(["fish", "-c", shell])
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "request", "review", "revoke"
    ]  # fmt: skip


@pytest.mark.kubectl
def test_kubectl_completes_kubectl_jit_through_its_plugin_completion() -> None:
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("the real kubectl binary is not installed")
    result = run([kubectl, "__complete", "jit", "list", "-o", ""])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["json", "yaml", "wide", ":4"]
    verbs = run([kubectl, "__complete", "jit", "request", "s"])
    assert verbs.stdout.splitlines() == ["scale", ":4"]
