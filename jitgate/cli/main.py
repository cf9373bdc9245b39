"""`jitgate`: the operator, the webhook, audit tooling, CRDs and the demo, one command each.

Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
`func` on its parser, called with the parsed namespace and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from importlib.metadata import version

from jitgate.cli.options import EXIT_USAGE, Parser

COMMAND_MODULES = (
    "jitgate.cli.operator_cmd",
    "jitgate.cli.webhook_cmd",
    "jitgate.cli.audit_cmd",
    "jitgate.cli.crds_cmd",
    "jitgate.cli.demo_cmd",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
