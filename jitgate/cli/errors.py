"""What can go wrong in a command line, as one exception tree (DESIGN.md §6).

Every failure a user can cause or meet is a `CliError`: a message that is one plain sentence
and the exit code to leave with. Each program writes it to stderr in its own voice (`Error:
…` for `kubectl jit`, `jitgate audit verify: ….` for the audit commands) and never a
traceback.

    CliError                  one sentence and an exit code
    ├── UsageError            2: bad usage or input that cannot be read at all
    │   └── MissingExtra      2: an optional part (`pip install 'jitgate[…]'`) is not installed
    └── CommandFailed         1: the command ran and what it checked or asked for failed
        └── ApiRefused        1: the Kubernetes API server answered with an error status

The layers below keep their own trees (`jitgate.audit.errors.AuditError`,
`jitgate.kube.CredentialsError`); the commands turn those into the ones here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Final

EXIT_OK: Final = 0
EXIT_CHECK_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

# The optional parts of jitgate (pyproject.toml's [project.optional-dependencies]): what needs
# each, and the top-level modules it brings. A module missing from here is a broken install.
_EXTRAS: Final = {
    "server": (
        "running the operator or the webhook",
        ("kopf", "aiohttp", "fastapi", "starlette", "uvicorn", "prometheus_client", "watchfiles"),
    ),
    "postgres": ("a postgresql:// audit log", ("psycopg", "psycopg_binary")),
    "demo": ("the demo", ("kmock", "httpx", "jsonpatch")),
}


class CliError(Exception):
    """A failure reported as one plain sentence on stderr; `code` is the exit code."""

    code: int = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    """Bad usage or input that cannot be read at all: exit code 2."""

    code = EXIT_USAGE


class MissingExtra(UsageError):
    """A command needs an optional part of jitgate that is not installed."""

    def __init__(self, extra: str) -> None:
        needs = _EXTRAS[extra][0]
        super().__init__(f"{needs} needs the {extra} extra: pip install 'jitgate[{extra}]'")
        self.extra = extra


class CommandFailed(CliError):
    """The command ran, and what it checked or asked for failed: exit code 1."""

    code = EXIT_CHECK_FAILED


class ApiRefused(CommandFailed):
    """The Kubernetes API server answered with an error; `http_status` is its code."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


def missing_extra(error: ImportError) -> MissingExtra | None:
    """The extra to install for the module `error` could not import, if an extra brings it."""
    root = (error.name or "").partition(".")[0]
    extra = next((extra for extra, (_, roots) in _EXTRAS.items() if root in roots), None)
    return MissingExtra(extra) if extra is not None else None


def sentence(text: str) -> str:
    """One plain sentence: whitespace folded, capitalised, one full stop."""
    text = " ".join(text.split())
    return text[:1].upper() + text[1:].rstrip(".") + "."


@contextlib.contextmanager
def needs_extra(extra: str) -> Iterator[None]:
    """A module an extra brings that cannot be imported in the block raises
    `MissingExtra(extra)`: the command names what to install, not the first module missing."""
    try:
        yield
    except ImportError as error:
        if missing_extra(error) is None:
            raise
        raise MissingExtra(extra) from error


def silence_stdout() -> None:
    """After a BrokenPipeError (`jitgate audit query | head`): the reader left, which is not
    an error; point stdout at /dev/null so Python's flush at exit says nothing either."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
