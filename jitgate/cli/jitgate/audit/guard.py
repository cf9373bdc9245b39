"""Every expected failure of an audit subcommand as one sentence and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from jitgate.audit.errors import AuditDataError, AuditError
from jitgate.cli.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    missing_extra,
    silence_stdout,
)

Options = TypeVar("Options")


def say(command: str, message: str) -> None:
    message = message.strip().rstrip(".")
    sys.stderr.write(f"jitgate audit {command}: {message}.\n")


def guarded(command: str, run: Callable[[Options], int]) -> Callable[[Options], int]:
    """`run`, with every failure written as `jitgate audit COMMAND: ….` and its exit code:
    1 for a damaged log, 2 for bad usage or a log, key or file that cannot be read."""

    @functools.wraps(run)
    def guarded_run(options: Options) -> int:
        try:
            return run(options)
        except CliError as error:
            say(command, error.message)
            return error.code
        except AuditDataError as error:
            say(command, str(error))
            return EXIT_CHECK_FAILED
        except AuditError as error:
            say(command, str(error))
            return EXIT_USAGE
        except ImportError as error:
            extra = missing_extra(error)
            if extra is None:
                raise
            say(command, extra.message)
            return extra.code
        except BrokenPipeError:
            silence_stdout()
            return EXIT_OK
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            say(command, f"{error.strerror or error}{where}")
            return EXIT_USAGE
        except Exception as error:  # a bug: still one sentence, but say what it was
            say(command, f"unexpected {type(error).__name__}: {error}")
            return EXIT_USAGE

    return guarded_run
