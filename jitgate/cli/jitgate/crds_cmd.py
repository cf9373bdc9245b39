"""`jitgate crds`: print the CustomResourceDefinitions, or write them into a directory."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.cli.errors import EXIT_OK, UsageError
from jitgate.cli.options import add_flag, command


@dataclass(frozen=True)
class CrdsOptions:
    output_dir: str | None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "crds",
        help="print jitgate's CustomResourceDefinitions",
        description="Print the CRDs generated from jitgate's API models, as one YAML stream "
        "(kubectl apply -f -), or write one file per CRD into --output-dir.",
    )
    add_flag(parser, "--output-dir", metavar="DIR", help="write one YAML file per CRD here")
    parser.set_defaults(handler=command(CrdsOptions, run))


def run(options: CrdsOptions) -> int:
    from jitgate.core.crds import render_all

    documents = render_all()
    if options.output_dir is None:
        sys.stdout.write("---\n".join(documents.values()))
        return EXIT_OK
    directory = Path(options.output_dir)
    if not directory.is_dir():
        raise UsageError(f"Output directory {directory} does not exist.")
    for name, text in documents.items():
        (directory / name).write_text(text)
    return EXIT_OK
