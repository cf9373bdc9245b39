"""Command-line flags that can also be set through `JITGATE_<FLAG>` environment variables."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


def env_name(flag: str) -> str:
    """`--tls-cert` is read from `JITGATE_TLS_CERT`."""
    return "JITGATE_" + flag.lstrip("-").replace("-", "_").upper()


def add_flag(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """Add `flag`, defaulting to its environment variable, and say so in `--help`."""
    variable = env_name(flag)
    from_env = os.environ.get(variable)
    action = kwargs.get("action")
    if from_env is not None:
        if action == "store_true":
            kwargs["default"] = from_env.lower() in {"1", "true", "yes", "on"}
        elif action == "append":
            kwargs["default"] = [part for part in from_env.split(",") if part]
        else:
            kwargs["default"] = from_env
        kwargs.pop("required", None)
    help_text = kwargs.get("help", "")
    kwargs["help"] = f"{help_text} [env: {variable}]".strip()
    parser.add_argument(flag, **kwargs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one plain sentence and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}.\n")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one plain sentence to stderr and exit."""
    sys.stderr.write(message.rstrip() + "\n")
    raise SystemExit(code)


def sentence(text: str) -> str:
    """One plain sentence: whitespace folded, capitalised, one full stop."""
    text = " ".join(text.split())
    return text[:1].upper() + text[1:].rstrip(".") + "."


def add_writer_flags(parser: argparse.ArgumentParser, *, kubeconfig_help: str) -> None:
    """The flags every long-running component (operator, webhook) shares: where its audit
    chain goes, how it is signed and named, how to reach the API server, and logging."""
    add_flag(
        parser,
        "--audit",
        metavar="URL",
        required=True,
        help="audit log: file:///var/lib/jitgate/audit (a directory) or postgresql://…",
    )
    add_flag(
        parser, "--audit-key-file", metavar="FILE", help="HMAC key that signs each record's hash"
    )
    add_flag(
        parser,
        "--writer-id",
        metavar="ID",
        default="",
        help="this replica's audit chain (default: $POD_NAME or the host name)",
    )
    add_flag(parser, "--kubeconfig", metavar="FILE", help=kubeconfig_help)
    add_flag(
        parser,
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log verbosity",
    )


def check_audit_url(url: str) -> None:
    """Refuse a malformed --audit URL before anything starts."""
    from jitgate.audit.errors import AuditError
    from jitgate.audit.url import parse_audit_url

    try:
        parse_audit_url(url)
    except AuditError as error:
        fail(sentence(f"--audit: {error}"))


def existing_file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        fail(f"{flag} {value} is not a readable file.")
    return path


def configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
