"""The `kubectl jit` parsers: commands, flags, and the typed options each one reads."""

from __future__ import annotations

import argparse
import datetime as dt
from importlib.metadata import version
from typing import Any, Literal, NoReturn

from jitgate.cli.completion import add_completion_command
from jitgate.cli.errors import EXIT_USAGE
from jitgate.cli.kubectl_jit.decide import run_decision, run_review, run_stop
from jitgate.cli.kubectl_jit.exits import exit_code_help
from jitgate.cli.kubectl_jit.extend import run as run_extend
from jitgate.cli.kubectl_jit.options import (
    DecisionOptions,
    ExtendOptions,
    ListOptions,
    RequestOptions,
    ReviewOptions,
    ShowOptions,
    StopOptions,
    WaitOptions,
)
from jitgate.cli.kubectl_jit.request import run as run_request
from jitgate.cli.kubectl_jit.request import run_wait
from jitgate.cli.kubectl_jit.review import run_list, run_show
from jitgate.cli.options import Command, Parser, command, options_from
from jitgate.core.api import MAX_USES, Decision
from jitgate.core.clock import SYSTEM_CLOCK, parse_time
from jitgate.core.durations import DurationError, format_duration, parse_duration
from jitgate.core.requests.annotations import CANCEL_ANNOTATION, REVOKE_ANNOTATION

PROG = "kubectl jit"
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


def _replica_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid replica count {text!r}: use 0 or more")
    return int(text)


def _use_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_USES:
        raise argparse.ArgumentTypeError(f"invalid use count {text!r}: use 1 to {MAX_USES}")
    return int(text)


def _start_time(text: str) -> dt.datetime:
    """An RFC 3339 time with a zone, or `+DURATION` from now."""
    if text.startswith("+"):
        try:
            return SYSTEM_CLOCK.now().replace(microsecond=0) + parse_duration(text[1:])
        except DurationError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use RFC 3339 with a zone (2026-11-21T22:00:00Z) or "
            "+DURATION (+2h)"
        ) from error


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
        (
            "unprotect",
            [],
            "switch a namespace's protection off (change its protection labels): "
            "unprotect namespace/NAME",
        ),
    ]
    for verb, aliases, summary in specs:
        parser = verbs.add_parser(
            verb,
            aliases=aliases,
            help=summary,
            description=summary,
            epilog=exit_code_help(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(verb=verb, handler=Command(_request_options, run_request))
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
        if verb == "scale":
            parser.add_argument(
                "--replicas",
                type=_replica_count,
                metavar="N",
                help="the replica count to scale to; the grant allows only that (else any)",
            )
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
            help="emergency self-activation, if the policy allows you; flagged for review; "
            "waits for the outcome like --wait",
        )
        parser.add_argument(
            "--max-uses",
            type=_use_count,
            metavar="N",
            help="a one-time (1) or N-use grant: it ends once N actions were allowed "
            "(dry runs do not count)",
        )
        parser.add_argument(
            "--start-at",
            type=_start_time,
            metavar="TIME",
            help="a scheduled start: an RFC 3339 time (2026-11-21T22:00:00Z) or +DURATION "
            "from now (+2h); approvals may come earlier, the grant starts then, and the request "
            "waits for approval until then plus the policy's pendingTimeout",
        )
        parser.add_argument("--name", help="the AccessRequest's name (else a generated one)")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="wait until approved, denied or expired, showing each approval; exit 0 only "
            "when approved (see the exit codes below)",
        )
        _timeout_flag(parser, "--wait")
        _connection_flags(parser, top=False)
    extend = subparsers.add_parser(
        "extend",
        help="ask to continue a live grant for longer, without a gap",
        description="Create an AccessRequest that extends the approved request NAME, whose\n"
        "grant must still be live: the same actions, for --by longer. Approvers decide it\n"
        "like any request (the policy may ask fewer approvals for extensions); approved\n"
        "before the grant ends, access continues without a gap. The total is capped by the\n"
        "policy's maxDuration (or extensions.maxTotalDuration) from the first grant's start.\n"
        "kubectl jit show NAME shows the chain of extensions.",
        epilog=exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extend.add_argument("name", metavar="NAME", help="the approved request to extend")
    extend.add_argument(
        "--by",
        required=True,
        metavar="DURATION",
        type=_duration,
        help="how much longer, e.g. 15m",
    )
    extend.add_argument("--reason", required=True, help="why you need longer; approvers see it")
    extend.add_argument("--ticket", help="a ticket reference (else the earlier request's)")
    extend.add_argument(
        "--wait", action="store_true", help="wait until approved, denied or expired"
    )
    _timeout_flag(extend, "--wait")
    extend.set_defaults(handler=Command(_extend_options, run_extend))
    _connection_flags(extend, top=False)
    waiting = subparsers.add_parser(
        "wait",
        help="wait for a request's decision (resume after Ctrl-C)",
        description="Wait until an access request is approved, denied or expired, showing "
        "each approval as it comes; once approved, print the grant's window and the command "
        "to run.",
        epilog=exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    waiting.add_argument("name", metavar="NAME")
    _timeout_flag(waiting, "wait")
    waiting.set_defaults(handler=Command(_wait_options, run_wait))
    _connection_flags(waiting, top=False)


def _timeout_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        type=_timeout,
        help=f"how long {what} waits (default {format_duration(DEFAULT_WAIT)})",
    )


def _review_parsers(subparsers: Any) -> None:
    listing = subparsers.add_parser(
        "list",
        help="list access requests",
        description="List AccessRequests. EXPIRES is when the grant ends (Approved) or when "
        "the request times out unanswered (Pending). With --pending, only the requests you "
        "may decide, as the AccessPolicies say.",
    )
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list requests in every namespace"
    )
    listing.add_argument(
        "--pending",
        action="store_true",
        help="the approver's queue: pending requests you may decide, soonest deadline first, "
        "with what each would allow and why",
    )
    listing.add_argument(
        "--mine", action="store_true", help="only your own requests (with -A: everywhere)"
    )
    listing.add_argument("-o", "--output", choices=("json", "yaml", "wide"), help="output format")
    listing.set_defaults(handler=command(ListOptions, run_list))
    _connection_flags(listing, top=False)

    show = subparsers.add_parser(
        "show", help="show one access request in detail", description="Show one AccessRequest."
    )
    show.add_argument("name", metavar="NAME")
    show.add_argument("-o", "--output", choices=("json", "yaml"), help="output format")
    show.set_defaults(handler=command(ShowOptions, run_show))
    _connection_flags(show, top=False)


def _decision_parsers(subparsers: Any) -> None:
    decisions: tuple[tuple[str, Decision, str], ...] = (
        ("approve", "Approve", "approve a pending access request"),
        ("deny", "Deny", "deny a pending access request"),
    )
    for verb, decision, summary in decisions:
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
        parser.set_defaults(handler=_decision_command(decision))
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
    review.set_defaults(handler=command(ReviewOptions, run_review))
    _connection_flags(review, top=False)
    stops: tuple[tuple[str, str, Literal["Pending", "Approved"], str], ...] = (
        ("revoke", REVOKE_ANNOTATION, "Approved", "end an approved request's grant now"),
        ("cancel", CANCEL_ANNOTATION, "Pending", "withdraw a pending request"),
    )
    for verb, annotation, wanted, summary in stops:
        parser = subparsers.add_parser(verb, help=summary, description=summary.capitalize() + ".")
        parser.add_argument("name", metavar="NAME")
        if verb == "revoke":
            parser.add_argument(
                "--reason", help="why; kept on the request and in the grant.revoked audit record"
            )
        parser.set_defaults(handler=_stop_command(annotation, wanted))
        _connection_flags(parser, top=False)


def _request_options(namespace: argparse.Namespace) -> RequestOptions:
    return options_from(RequestOptions, namespace, timeout=namespace.timeout or DEFAULT_WAIT)


def _extend_options(namespace: argparse.Namespace) -> ExtendOptions:
    return options_from(ExtendOptions, namespace, timeout=namespace.timeout or DEFAULT_WAIT)


def _wait_options(namespace: argparse.Namespace) -> WaitOptions:
    return options_from(WaitOptions, namespace, timeout=namespace.timeout or DEFAULT_WAIT)


def _decision_command(decision: Decision) -> Command[DecisionOptions]:
    return Command(
        lambda namespace: options_from(DecisionOptions, namespace, decision=decision),
        run_decision,
    )


def _stop_command(annotation: str, wanted: Literal["Pending", "Approved"]) -> Command[StopOptions]:
    return Command(
        lambda namespace: options_from(
            StopOptions, namespace, annotation=annotation, wanted=wanted
        ),
        run_stop,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = JitParser(
        prog=PROG,
        description="Ask for, review and decide just-in-time access to protected actions.",
        epilog="Examples:\n"
        "  kubectl jit request exec web-0 -n prod --for 15m --reason 'INC-1234: stuck worker'\n"
        "  kubectl jit list --pending -A\n"
        "  kubectl jit approve alice-exec-web-0-x7k2 -n prod -m ok\n"
        "  kubectl jit exec -it web-0 -n prod -- sh     (also attach, port-forward: kubectl's\n"
        "      own flags, through jitgate's session gateway, which records the session)\n\n"
        + exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubectl-jit {version('jitgate')}")
    _connection_flags(parser, top=True)
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=JitParser)
    _request_parsers(subparsers)
    _review_parsers(subparsers)
    _decision_parsers(subparsers)
    add_completion_command(subparsers, "kubectl-jit")
    return parser
