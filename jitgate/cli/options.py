"""Command-line flags that can also be set through `JITGATE_<FLAG>` environment variables."""

from __future__ import annotations

import argparse
import os
import sys
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
