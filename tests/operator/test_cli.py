"""`jitgate operator` flags, their JITGATE_<FLAG> environment defaults and usage errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from jitgate.operator.config import OperatorConfig

from jitgate.cli.jitgate.main import build_parser
from jitgate.cli.jitgate.operator_cmd import OperatorOptions, config_from
from jitgate.cli.options import options_from


def parse(*argv: str) -> OperatorConfig:
    namespace = build_parser().parse_args(["operator", *argv])
    return config_from(options_from(OperatorOptions, namespace))


def test_flags_become_the_operator_config() -> None:
    config = parse(
        "--audit", "file:///var/lib/jitgate/audit",
        "--audit-key-file", "/etc/jitgate/key",
        "--writer-id", "op-1",
        "--namespace", "prod", "--namespace", "staging",
        "--peering", "jitgate", "--priority", "2",
        "--liveness", "http://0.0.0.0:8080/healthz",
        "--retention", "48h",
        "--notify-url", "https://hooks.example/x", "--notify-format", "generic",
        "--metrics-port", "9090",
    )  # fmt: skip
    assert config.audit_url == "file:///var/lib/jitgate/audit"
    assert config.audit_key_file == Path("/etc/jitgate/key")
    assert config.writer == "op-1"
    assert config.namespaces == ("prod", "staging")
    assert (config.peering, config.priority, config.standalone) == ("jitgate", 2, False)
    assert config.retention == dt.timedelta(hours=48)
    assert config.notify is not None and config.notify.format == "generic"
    assert config.metrics_port == 9090


def test_defaults_serve_every_namespace_and_keep_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "jitgate-operator-0")
    config = parse("--audit", "file:///a")
    assert config.namespaces == ()
    assert config.retention == dt.timedelta(days=7)
    assert config.notify is None
    assert config.writer == "jitgate-operator-0"


def test_every_flag_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITGATE_AUDIT", "file:///from-env")
    monkeypatch.setenv("JITGATE_NAMESPACE", "a,b")
    monkeypatch.setenv("JITGATE_STANDALONE", "true")
    monkeypatch.setenv("JITGATE_RETENTION", "1h")
    monkeypatch.setenv("JITGATE_NOTIFY_URL", "http://127.0.0.1/x")
    config = parse()
    assert config.audit_url == "file:///from-env"
    assert config.namespaces == ("a", "b")
    assert config.standalone is True
    assert config.retention == dt.timedelta(hours=1)
    assert config.notify is not None and config.notify.format == "slack"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--namespace", "a", "--all-namespaces"], "not allowed with argument"),
        (["--standalone", "--peering", "x"], "not allowed with argument"),
        (["--retention", "soon"], "--retention: duration 'soon' is not a Go duration"),
        (["--notify-url", "http://x", "--notify-format", "teams"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_sentence(argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jitgate.cli.jitgate", "operator", "--audit", "file:///a", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or "usage:" in result.stderr


def test_an_unusable_audit_url_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jitgate.cli.jitgate", "operator", "--audit", "ftp://nope",
         "--kubeconfig", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr


def test_the_slack_app_needs_all_its_flags_and_its_files(tmp_path: Path) -> None:
    from jitgate.cli.errors import UsageError

    files = {name: tmp_path / name for name in ("token", "secret", "users.yaml")}
    for path in files.values():
        path.write_text("x\n")
    flags = (
        "--slack-channel", "C0ACCESS", "--slack-bot-token-file", str(files["token"]),
        "--slack-signing-secret-file", str(files["secret"]),
        "--slack-users", str(files["users.yaml"]),
        "--slack-tls-cert", "/etc/tls/tls.crt", "--slack-tls-key", "/etc/tls/tls.key",
    )  # fmt: skip
    config = parse("--audit", "file:///a", *flags)
    assert config.slack is not None
    assert (config.slack.channel, config.slack.port, config.slack.path) == (
        "C0ACCESS",
        8444,
        "/slack/interactions",
    )
    assert parse("--audit", "file:///a").slack is None
    with pytest.raises(UsageError, match="also needs --slack-tls-cert, --slack-tls-key"):
        parse("--audit", "file:///a", *flags[:8])
    files["secret"].unlink()
    with pytest.raises(UsageError, match="--slack-signing-secret-file: no file"):
        parse("--audit", "file:///a", *flags)
