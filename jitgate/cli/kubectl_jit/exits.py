"""How `kubectl jit` exits: the one table of exit codes, for scripts that wait on a request.

`request --wait` and `wait` end with the code of the request's outcome, so a script can tell
a denial from a timeout without reading the message. `--help` and the README print
`EXIT_CODES` as it is here.
"""

from __future__ import annotations

from typing import Final

from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError

EXIT_DENIED: Final = 3
EXIT_EXPIRED: Final = 4
EXIT_TIMED_OUT: Final = 5
EXIT_ENDED: Final = 6

EXIT_CODES: Final[tuple[tuple[int, str], ...]] = (
    (EXIT_OK, "done; with --wait or wait: approved, the grant is live"),
    (EXIT_CHECK_FAILED, "failed: the API server refused, or the cluster cannot be reached"),
    (EXIT_USAGE, "bad usage: an unknown flag, a missing argument, a value that cannot be read"),
    (EXIT_DENIED, "denied: an approver, or the operator under the policies, denied the request"),
    (
        EXIT_EXPIRED,
        "expired: nobody decided before the pending deadline, or the grant already expired",
    ),
    (EXIT_TIMED_OUT, "timed out: --timeout passed while the request was still pending"),
    (EXIT_ENDED, "cancelled before a decision, or its grant revoked"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); resume with: kubectl jit wait NAME"),
)

# The exit code for each final phase a wait can end in.
PHASE_EXITS: Final = {
    "Denied": EXIT_DENIED,
    "Expired": EXIT_EXPIRED,
    "Cancelled": EXIT_ENDED,
    "Revoked": EXIT_ENDED,
}


def exit_code_help() -> str:
    """The table as `--help` prints it."""
    lines = ["Exit codes:"]
    lines += [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class WaitEnded(CliError):
    """A wait that ended without a live grant; `code` says how (see `EXIT_CODES`)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
