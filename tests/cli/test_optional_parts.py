"""The command lines load what they need and nothing more, and name the extra to install.

Each case runs a program in a fresh interpreter whose import system refuses the modules an
extra brings (a `sys.meta_path` finder installed before jitgate is imported) and records
every attempt to import one, so a test sees what a plain `pip install jitgate` would meet.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = ("kopf", "fastapi", "uvicorn", "starlette", "aiohttp", "prometheus_client")
# What a plain install lacks; the kubernetes client comes with the server extra (the webhook's
# watch), `kubectl jit` reaches the cluster without it.
HEAVY = (*SERVER, "kubernetes", "psycopg", "kmock", "httpx")
JITGATE = "jitgate.cli.jitgate.main:main"
KUBECTL_JIT = "jitgate.cli.kubectl_jit.main:main"

# Run as `python -c BLOCKER LOG BLOCKED ENTRY [ARGS...]`.
BLOCKER = """
import atexit, importlib, json, sys

log, blocked, entry = sys.argv[1], set(sys.argv[2].split(",")), sys.argv[3]
attempts = []


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
atexit.register(lambda: open(log, "w").write(json.dumps(attempts)))
sys.argv = [entry, *sys.argv[4:]]
module, _, function = entry.partition(":")
sys.exit(getattr(importlib.import_module(module), function)())
"""


def run_without(
    tmp_path: Path, blocked: tuple[str, ...], entry: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `entry` with `args`, the `blocked` modules missing; the result and the attempts."""
    log = tmp_path / "attempts.json"
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(log), ",".join(blocked), entry, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    attempts: list[str] = json.loads(log.read_text())
    return result, attempts


@pytest.mark.parametrize(
    ("entry", "args", "shows"),
    [
        (KUBECTL_JIT, ["--help"], "request"),
        (KUBECTL_JIT, ["request", "exec", "--help"], "--reason"),
        (JITGATE, ["--help"], "audit"),
        (JITGATE, ["webhook", "--help"], "--tls-cert"),
        (JITGATE, ["operator", "--help"], "--all-namespaces"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_help_imports_no_server_framework(
    tmp_path: Path, entry: str, args: list[str], shows: str
) -> None:
    result, attempts = run_without(tmp_path, HEAVY, entry, *args)
    assert (result.returncode, result.stderr) == (0, "")
    assert shows in result.stdout
    assert attempts == []


async def test_kubectl_jit_reaches_the_cluster_without_the_kubernetes_client(
    tmp_path: Path, kubeconfig: Path
) -> None:
    config = ("--kubeconfig", str(kubeconfig), "--context", "alice")
    # In a thread: the emulator answers from this test's event loop.
    listed, attempts = await asyncio.to_thread(
        run_without, tmp_path, HEAVY, KUBECTL_JIT, *config, "list", "-n", "prod"
    )
    assert (listed.returncode, listed.stdout) == (0, "")
    assert listed.stderr == "No resources found in prod namespace.\n"
    assert attempts == []
    asked, attempts = await asyncio.to_thread(
        run_without, tmp_path, HEAVY, KUBECTL_JIT, *config,
        "request", "exec", "web-0", "-n", "prod", "--reason", "debugging", "--name", "fix",
    )  # fmt: skip
    assert (asked.returncode, asked.stderr) == (0, "")
    assert asked.stdout.startswith("accessrequest.jitgate.dev/fix created\n")
    assert attempts == []


def test_audit_commands_on_files_import_no_server_framework(tmp_path: Path) -> None:
    log = tmp_path / "audit"
    log.mkdir()
    verify, attempts = run_without(tmp_path, HEAVY, JITGATE, "audit", "verify", "--audit",
                                   f"file://{log}")  # fmt: skip
    assert (verify.returncode, verify.stdout) == (0, "The audit log is empty.\n")
    assert attempts == []
    query, attempts = run_without(tmp_path, HEAVY, JITGATE, "audit", "query", "--audit",
                                  f"file://{log}", "-o", "csv")  # fmt: skip
    assert query.returncode == 0 and query.stdout.startswith("time,writer,seq,")
    assert attempts == []


@pytest.mark.parametrize(
    ("args", "blocked", "sentence"),
    [
        (
            ["webhook", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--audit", "file:///a"],
            ("fastapi", "uvicorn", "starlette"),
            "Running the operator or the webhook needs the server extra: "
            "pip install 'jitgate[server]'.\n",
        ),
        (
            ["operator", "--audit", "file:///a"],
            ("kopf", "aiohttp"),
            "Running the operator or the webhook needs the server extra: "
            "pip install 'jitgate[server]'.\n",
        ),
        (
            ["demo"],
            ("kmock", "httpx", "jsonpatch"),
            "The demo needs the demo extra: pip install 'jitgate[demo]'.\n",
        ),
        (
            ["audit", "verify", "--audit", "postgresql://jitgate@127.0.0.1:1/jitgate"],
            ("psycopg",),
            "jitgate audit verify: a postgresql:// audit log needs the postgres extra: "
            "pip install 'jitgate[postgres]'.\n",
        ),
    ],
    ids=["webhook", "operator", "demo", "postgres"],
)
def test_a_missing_extra_is_named_in_one_sentence(
    tmp_path: Path, args: list[str], blocked: tuple[str, ...], sentence: str
) -> None:
    result, attempts = run_without(tmp_path, blocked, JITGATE, *args)
    assert (result.returncode, result.stderr) == (2, sentence)
    assert attempts, "the command never reached for the missing part"
