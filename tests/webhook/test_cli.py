"""`jitgate webhook` as a process: flags, JITGATE_<FLAG> variables, serving and stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from jitgate.webhook.config import WebhookConfig

from jitgate.cli.jitgate.main import main

COMMAND = [sys.executable, "-m", "jitgate.cli.jitgate", "webhook"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_help_names_every_flag_and_its_variable() -> None:
    out = run("--help").stdout
    for flag in (
        "--host", "--port", "--tls-cert", "--tls-key", "--client-ca", "--audit", "--audit-key-file",
        "--checkpoint-key", "--witness", "--witness-ca", "--witness-key", "--witness-state",
        "--witness-log-key", "--writer-id", "--kubeconfig", "--operator-user", "--exempt-user",
        "--exempt-group", "--apiserver-traces",
    ):  # fmt: skip
        assert flag in out
        assert "JITGATE_" + flag.lstrip("-").replace("-", "_").upper() in out


def started_with(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> WebhookConfig:
    """The configuration `jitgate webhook ARGV` starts the webhook with (in this process, the
    server itself not started)."""
    started: list[WebhookConfig] = []
    monkeypatch.setattr("jitgate.webhook.server.run_webhook", started.append)
    assert main(["webhook", *argv]) == 0
    (config,) = started
    return config


@pytest.mark.parametrize(
    ("flags", "variable", "trusted"),
    [
        ([], None, False),
        (["--apiserver-traces"], None, True),
        ([], "true", True),
        ([], "false", False),
    ],
    ids=["default", "flag", "variable", "variable-false"],
)
def test_the_api_servers_trace_ids_are_trusted_only_when_told(
    flags: list[str],
    variable: str | None,
    trusted: bool,
    pki: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--apiserver-traces` (or JITGATE_APISERVER_TRACES) is the operator's word that the
    kube-apiserver runs with a tracing configuration; without it no trace id is believed."""
    monkeypatch.delenv("JITGATE_APISERVER_TRACES", raising=False)
    if variable is not None:
        monkeypatch.setenv("JITGATE_APISERVER_TRACES", variable)
    serving = ["--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)]
    config = started_with([*serving, "--audit", f"file://{tmp_path}/audit", *flags], monkeypatch)
    assert config.apiserver_traces is trusted


def test_bad_usage_is_one_sentence_and_exit_code_2(pki: Any, tmp_path: Path) -> None:
    missing = run("--audit", f"file://{tmp_path}")
    assert missing.returncode == 2
    assert "the following arguments are required: --tls-cert, --tls-key" in missing.stderr
    unreadable = run("--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(pki.key_file),
                     "--audit", f"file://{tmp_path}")  # fmt: skip
    assert unreadable.returncode == 2
    assert unreadable.stderr == f"--tls-cert {tmp_path / 'nope.crt'} is not a readable file.\n"
    no_ca = run("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file),
                "--client-ca", str(tmp_path / "ca.crt"),
                "--audit", f"file://{tmp_path}")  # fmt: skip
    assert no_ca.returncode == 2
    assert no_ca.stderr == f"--client-ca {tmp_path / 'ca.crt'} is not a readable file.\n"
    bad_url = run(
        "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file), "--audit", "s3://x"
    )
    assert bad_url.returncode == 2 and bad_url.stderr.startswith(
        "--audit: audit URL 's3://x' is neither"
    )
    assert len(bad_url.stderr.strip().splitlines()) == 1
    no_key = run("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file),
                 "--audit", f"file://{tmp_path}", "--witness", "http://127.0.0.1:1")  # fmt: skip
    assert no_key.returncode == 2
    assert no_key.stderr == "--witness cosigns checkpoints: it needs --checkpoint-key too.\n"
    bad_port = run(
        "--port",
        "http",
        env={"JITGATE_TLS_CERT": "a", "JITGATE_TLS_KEY": "b", "JITGATE_AUDIT": "c"},
    )
    assert bad_port.returncode == 2 and "invalid port 'http'" in bad_port.stderr


def test_peer_witness_flags_are_checked_together(pki: Any, tmp_path: Path) -> None:
    serving = ("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file))
    audit = ("--audit", f"file://{tmp_path}/audit")
    key = tmp_path / "witness.key"
    key.write_text("not used: the flags are refused first\n")
    cases = {
        ("--witness-state", str(tmp_path)): "--witness-state and --witness-log-key need "
        "--witness-key.",
        ("--witness-key", str(key)): "--witness-key needs --witness-state, where the witness "
        "keeps its state.",
        ("--witness-key", str(key), "--witness-state", str(tmp_path)): "--witness-key needs "
        "the logs it witnesses: --checkpoint-key (this deployment's) or --witness-log-key.",
        ("--witness-ca", str(pki.ca_file)): "--witness-ca checks the witnesses' certificates: "
        "give --witness too.",
    }
    for flags, message in cases.items():
        result = run(*serving, *audit, *flags)
        assert (result.returncode, result.stderr) == (2, message + "\n"), flags
    assert not (tmp_path / "audit").exists()


def test_a_webhook_that_cannot_start_exits_1_with_one_sentence(
    pki: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run(
        "--host", "127.0.0.1", "--port", str(free_port()), "--tls-cert", str(pki.cert_file),
        "--tls-key", str(pki.key_file), "--audit", f"file://{blocker}/audit",
        "--kubeconfig", str(kubeconfig), "--writer-id", "webhook-0",
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("The webhook could not start: ") and last.endswith(".")
    assert "Traceback" not in result.stderr
    wrong_key = run(
        "--tls-cert", str(pki.key_file), "--tls-key", str(pki.cert_file),
        "--audit", f"file://{tmp_path}/audit", "--kubeconfig", str(kubeconfig),
    )  # fmt: skip
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.startswith("The webhook could not start: ")
    assert "Traceback" not in wrong_key.stderr
    garbage = tmp_path / "kubeconfig"
    garbage.write_text("clusters: [")
    bad_config = run(
        "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file),
        "--audit", f"file://{tmp_path}/audit", "--kubeconfig", str(garbage),
    )  # fmt: skip
    assert bad_config.returncode == 1
    assert "cannot load the cluster configuration" in bad_config.stderr.splitlines()[-1]
    assert "Traceback" not in bad_config.stderr


async def test_the_command_serves_until_sigterm(
    cluster: Any, kubeconfig: Path, pki: Any, tmp_path: Path, reviews: Any
) -> None:
    port = free_port()
    key = tmp_path / "hmac.key"
    key.write_bytes(os.urandom(32))
    env = {
        **os.environ,
        "JITGATE_TLS_CERT": str(pki.cert_file),
        "JITGATE_TLS_KEY": str(pki.key_file),
        "JITGATE_AUDIT": f"file://{tmp_path}/audit",
        "JITGATE_AUDIT_KEY_FILE": str(key),
        "JITGATE_EXEMPT_USER": "flux,argocd",
        "POD_NAME": "jitgate-webhook-0",
    }
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "--host", "127.0.0.1", "--port", str(port), "--kubeconfig", str(kubeconfig),
        "--exempt-group", "gitops", env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{port}", verify=pki.client_context()
        ) as http:
            for _ in range(300):  # bounded: start-up plus the first list take well under a second
                if process.returncode is not None:
                    break
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)  # a separate process: nothing to wait on but its port
            assert (await http.get("/readyz")).status_code == 200
            for user, groups, allowed in (
                ("flux", [], True),
                ("dex", ["gitops"], True),
                ("alice", [], False),
            ):
                answer = (
                    await http.post("/validate", json=reviews.exec(user=user, groups=groups))
                ).json()
                assert answer["response"]["allowed"] is allowed, user
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    [segment] = (tmp_path / "audit" / "jitgate-webhook-0").glob("*.jsonl")
    record = segment.read_text().splitlines()[-1]
    assert '"action.denied"' in record and '"mac":' in record  # signed with the key file
