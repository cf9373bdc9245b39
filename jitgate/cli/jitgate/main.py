"""`jitgate`: the operator, the webhook, audit tooling, CRDs and the demo, one command each.

Each subcommand's module exposes `register(subparsers)`, which sets the parser's `handler`
to a `Command`: the subcommand's typed options, read from the namespace, and what runs them.
A `CliError` leaves as one sentence on stderr with its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import version

from jitgate.cli.completion import COMPLETE_COMMAND, add_completion_command, answer
from jitgate.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    missing_extra,
    sentence,
    silence_stdout,
)
from jitgate.cli.options import Command, Parser

COMMAND_MODULES = (
    "jitgate.cli.jitgate.operator_cmd",
    "jitgate.cli.jitgate.webhook_cmd",
    "jitgate.cli.jitgate.audit.commands",
    "jitgate.cli.jitgate.crds_cmd",
    "jitgate.cli.jitgate.demo_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="jitgate",
        description="Just-in-time action approval for Kubernetes.",
        epilog="Every flag can also be set by an environment variable JITGATE_<FLAG>.",
    )
    parser.add_argument("--version", action="version", version=f"jitgate {version('jitgate')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    add_completion_command(subparsers, "jitgate")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [COMPLETE_COMMAND]:
        sys.stdout.write(answer(parser, args[1:]))
        return EXIT_OK
    namespace = parser.parse_args(args)
    handler: Command[object] | None = getattr(namespace, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(namespace)
    except CliError as error:
        return _say(error)
    except ImportError as error:
        extra = missing_extra(error)
        if extra is None:
            raise
        return _say(extra)
    except BrokenPipeError:
        silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _say(error: CliError) -> int:
    sys.stderr.write(sentence(error.message) + "\n")
    return error.code
