"""`kubectl jit`: parse the command line, run the command, report a failure in one line.

kubectl runs `kubectl-jit` from PATH for `kubectl jit …`, passing every argument after
`jit` and its own environment (KUBECONFIG included), so the plugin reads the kubeconfig
itself, the way kubectl does (`jitgate.kube`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jitgate.cli.completion import COMPLETE_COMMAND, answer
from jitgate.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    silence_stdout,
)
from jitgate.cli.kubectl_jit import streams
from jitgate.cli.kubectl_jit.arguments import build_parser
from jitgate.cli.options import Command


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the command's typed options and what runs them."""

    options: Any
    run: Callable[[Any], int]

    def __call__(self) -> int:
        return self.run(self.options)


def parse_args(argv: Sequence[str]) -> Invocation:
    """Parse `kubectl jit` arguments; everything after the first `--` is the exec command."""
    words = list(argv)
    command: list[str] = []
    if "--" in words:
        split = words.index("--")
        words, command = words[:split], words[split + 1 :]
    parser = build_parser()
    namespace = parser.parse_args(words)
    verb = getattr(namespace, "verb", None)
    if "--" in argv and verb != "exec":
        parser.error("a command after -- applies only to `kubectl jit request exec`")
    if "--" in argv and not command:
        parser.error("name the command to run after --")
    handler: Command[Any] | None = getattr(namespace, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    waits = getattr(namespace, "wait", False) or getattr(namespace, "break_glass", False)
    creates = verb is not None or getattr(namespace, "by", None) is not None  # request, extend
    if creates and namespace.timeout is not None and not waits:
        parser.error("--timeout applies only with --wait (or --break-glass, which always waits)")
    namespace.exec_command = command or None
    return Invocation(handler.read(namespace), handler.run)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [COMPLETE_COMMAND]:
        sys.stdout.write(answer(build_parser(), args[1:]))
        return EXIT_OK
    try:
        stream = streams.stream_command(args)
        if stream is not None:
            return streams.run(*stream)
        return parse_args(args)()
    except CliError as error:
        sys.stderr.write(f"Error: {error.message}\n")
        return error.code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `kubectl jit list | head`: the reader left; say nothing more on the closed pipe.
        silence_stdout()
        return EXIT_OK


def complete() -> int:
    """`kubectl_complete-jit`: kubectl asks it for the candidates of `kubectl jit …<TAB>`."""
    sys.stdout.write(answer(build_parser(), sys.argv[1:], kubectl=True))
    return EXIT_OK
