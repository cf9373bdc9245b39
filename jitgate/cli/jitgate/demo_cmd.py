"""`jitgate demo`: see the whole system work in under a minute, without a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.cli.errors import needs_extra
from jitgate.cli.options import command


@dataclass(frozen=True)
class DemoOptions:
    keep: Path | None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="play the request / approve / expire / audit story locally",
        description="Start a local Kubernetes API emulator, the operator and the webhook "
        "(HTTPS), then play alice's and bob's parts with narration: a denied exec, a "
        "request, a refused self-approval, bob's approval, the allowed exec, expiry, the "
        "audit trail and a tampered record caught by verify. Exits 0 when every step "
        "showed what it should. Needs no cluster and sends traffic only to 127.0.0.1.",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="keep the audit log, certificates and process logs in DIR",
    )
    parser.set_defaults(handler=command(DemoOptions, run))


def run(options: DemoOptions) -> int:
    with needs_extra("demo"):
        from jitgate.devtools.demo import main

    return main(options.keep)
