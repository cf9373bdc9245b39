"""``python -m jitgate.devtools.emulator``: serve an emulator until stopped (as the demo does).

Prints the URL on stdout once it is ready and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from jitgate.devtools.emulator.server import EmulatorHandle, serve_forever


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jitgate.devtools.emulator",
        description="Serve an in-memory Kubernetes API emulator (plain HTTP) until stopped.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
    parser.add_argument("--user", action="append", dest="users", help="kubeconfig user (repeat)")
    parser.add_argument("--namespace", default="default", help="the contexts' namespace")
    parser.add_argument("--crds", action="append", default=[], help="CRD file or directory")
    args = parser.parse_args(argv)

    def ready(handle: EmulatorHandle) -> None:
        print(handle.url, flush=True)

    try:
        asyncio.run(
            serve_forever(
                args.host,
                args.port,
                kubeconfig=args.kubeconfig,
                users=args.users or ["admin"],
                namespace=args.namespace,
                crds=args.crds,
                ready=ready,
            )
        )
    except OSError as e:
        print(f"Cannot serve the emulator: {e}.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
