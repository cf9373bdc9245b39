"""`kubectl jit`: ask for, review and decide just-in-time access, as a kubectl plugin.

kubectl runs `kubectl-jit` from PATH for `kubectl jit …`, passing every argument after
`jit` and its own environment (KUBECONFIG included), so the plugin reads the kubeconfig
itself, the way kubectl does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, NoReturn

from jitgate.cli import jit_decide, jit_request, jit_review
from jitgate.cli.jit_cluster import CommandError
from jitgate.cli.options import EXIT_OK, EXIT_USAGE, Parser
from jitgate.core.durations import DurationError, parse_duration
from jitgate.core.requests.annotations import CANCEL_ANNOTATION, REVOKE_ANNOTATION

PROG = "kubectl jit"
EXIT_INTERRUPTED = 130
DEFAULT_WAIT = dt.timedelta(minutes=10)


class JitParser(Parser):
    """Usage errors as one `Error:` line naming the help to read, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"Error: {message}; see '{self.prog} --help'.\n")


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def _timeout(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _connection_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand, as kubectl accepts them; a subcommand's
    # parser must not reset a value given earlier, hence SUPPRESS below the top.
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig", metavar="FILE", default=default, help="kubeconfig file (else KUBECONFIG)"
    )
    group.add_argument(
        "--context", metavar="NAME", default=default, help="kubeconfig context to use"
    )
    group.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        default=default,
        help="namespace (else the context's namespace, else default)",
    )


def _request_parsers(subparsers: Any) -> None:
    request = subparsers.add_parser(
        "request",
        help="ask for time-bound access to an action",
        description="Create an AccessRequest for an action that jitgate protects. Approvers "
        "then run `kubectl jit approve NAME`.",
    )
    _connection_flags(request, top=False)
    verbs = request.add_subparsers(dest="verb", metavar="ACTION", parser_class=JitParser)
    verbs.required = True
    specs = [
        ("exec", [], "run a command in a pod: exec POD [-c CONTAINER] [-- COMMAND ...]"),
        ("attach", [], "attach to a running container: attach POD [-c CONTAINER]"),
        ("portforward", ["port-forward"], "forward ports to a pod: portforward POD"),
        ("delete", [], "delete objects: delete KIND/NAME ... (pod/web-0, deploy/web)"),
        ("scale", [], "scale a workload: scale KIND/NAME (deploy/web, sts/db, rs/web-1)"),
    ]
    for verb, aliases, summary in specs:
        parser = verbs.add_parser(verb, aliases=aliases, help=summary, description=summary)
        parser.set_defaults(verb=verb, func=jit_request.run)
        if verb in ("exec", "attach", "portforward"):
            parser.add_argument("pod", metavar="POD", help="the pod")
        else:
            parser.add_argument(
                "targets",
                metavar="KIND/NAME",
                nargs="+",
                help="objects as KIND/NAME, or KIND NAME ...; KIND as kubectl spells it",
            )
        if verb in ("exec", "attach"):
            parser.add_argument(
                "-c", "--container", help="the container (else any container in the pod)"
            )
        else:
            parser.set_defaults(container=None)
        parser.add_argument(
            "--for",
            dest="duration",
            metavar="DURATION",
            type=_duration,
            help="how long the grant should last, e.g. 15m (else the policy's default)",
        )
        parser.add_argument("--reason", required=True, help="why you need it; approvers see it")
        parser.add_argument("--ticket", help="an incident or change ticket, e.g. INC-1234")
        parser.add_argument(
            "--break-glass",
            action="store_true",
            help="emergency self-activation, if the policy allows you; flagged for review",
        )
        parser.add_argument("--name", help="the AccessRequest's name (else a generated one)")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="wait until approved, denied or expired; exit 1 unless approved",
        )
        parser.add_argument(
            "--timeout",
            metavar="DURATION",
            type=_timeout,
            help="how long --wait waits (default 10m)",
        )
        _connection_flags(parser, top=False)


def _review_parsers(subparsers: Any) -> None:
    listing = subparsers.add_parser(
        "list",
        help="list access requests",
        description="List AccessRequests. EXPIRES is when the grant ends (Approved) or when "
        "the request times out unanswered (Pending).",
    )
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list requests in every namespace"
    )
    listing.add_argument("--pending", action="store_true", help="only requests awaiting approval")
    listing.add_argument("-o", "--output", choices=("json", "yaml", "wide"), help="output format")
    listing.set_defaults(func=jit_review.run_list)
    _connection_flags(listing, top=False)

    show = subparsers.add_parser(
        "show", help="show one access request in detail", description="Show one AccessRequest."
    )
    show.add_argument("name", metavar="NAME")
    show.add_argument("-o", "--output", choices=("json", "yaml"), help="output format")
    show.set_defaults(func=jit_review.run_show)
    _connection_flags(show, top=False)


def _decision_parsers(subparsers: Any) -> None:
    for verb, decision, summary in (
        ("approve", "Approve", "approve a pending access request"),
        ("deny", "Deny", "deny a pending access request"),
    ):
        parser = subparsers.add_parser(
            verb,
            help=summary,
            description=f"{summary.capitalize()}. It is shown first and you are asked to "
            "confirm, unless --yes is given.",
        )
        parser.add_argument("name", metavar="NAME")
        parser.add_argument(
            "-m",
            "--message",
            required=decision == "Deny",
            help="the reason for denying" if decision == "Deny" else "a comment for the record",
        )
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
        parser.set_defaults(func=_bind(jit_decide.run_decision, decision))
        _connection_flags(parser, top=False)
    review = subparsers.add_parser(
        "review",
        help="mark a break-glass request reviewed",
        description="Mark a break-glass request reviewed, as an approver, after its emergency "
        "grant was activated (while it is live or after it ended). It is shown first and you "
        "are asked to confirm, unless --yes is given.",
    )
    review.add_argument("name", metavar="NAME")
    review.add_argument("-m", "--message", help="a comment for the record")
    review.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    review.set_defaults(func=jit_decide.run_review)
    _connection_flags(review, top=False)
    for verb, annotation, wanted, summary in (
        ("revoke", REVOKE_ANNOTATION, "Approved", "end an approved request's grant now"),
        ("cancel", CANCEL_ANNOTATION, "Pending", "withdraw a pending request"),
    ):
        parser = subparsers.add_parser(verb, help=summary, description=summary.capitalize() + ".")
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(func=_bind(jit_decide.run_stop, annotation, wanted))
        _connection_flags(parser, top=False)


def _bind(func: Callable[..., int], *extra: Any) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return func(args, *extra)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = JitParser(
        prog=PROG,
        description="Ask for, review and decide just-in-time access to protected actions.",
        epilog="Examples:\n"
        "  kubectl jit request exec web-0 -n prod --for 15m --reason 'INC-1234: stuck worker'\n"
        "  kubectl jit list --pending -A\n"
        "  kubectl jit approve alice-exec-web-0-x7k2 -n prod -m ok",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubectl-jit {version('jitgate')}")
    _connection_flags(parser, top=True)
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=JitParser)
    _request_parsers(subparsers)
    _review_parsers(subparsers)
    _decision_parsers(subparsers)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `kubectl jit` arguments; everything after the first `--` is the exec command."""
    words = list(argv)
    command: list[str] = []
    if "--" in words:
        split = words.index("--")
        words, command = words[:split], words[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(words)
    if "--" in argv and getattr(args, "verb", None) != "exec":
        parser.error("a command after -- applies only to `kubectl jit request exec`")
    if "--" in argv and not command:
        parser.error("name the command to run after --")
    args.exec_command = command or None
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    if getattr(args, "verb", None) is not None:
        if args.timeout is not None and not args.wait:
            parser.error("--timeout applies only with --wait")
        args.timeout = args.timeout or DEFAULT_WAIT
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except CommandError as error:
        sys.stderr.write(f"Error: {error.message}\n")
        return error.code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `kubectl jit list | head`: the reader left; say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
