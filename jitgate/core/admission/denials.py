"""What a denied user reads: why no grant covers the attempt, and the command to ask for one.

The reason is the most helpful one among the caller's grants in the namespace; the command
is a `kubectl jit request …` line that `kubectl jit` accepts and whose request covers
exactly the denied action.
"""

from __future__ import annotations

import datetime as dt

from jitgate.core import shell
from jitgate.core.actions import AttemptedAction
from jitgate.core.api import RequestedAction
from jitgate.core.clock import format_time
from jitgate.core.grant_index import IndexedGrant
from jitgate.core.matching import (
    action_mismatch,
    grant_covers,
    is_live,
    target_replicas,
    window_mismatch,
)
from jitgate.core.vocabulary import CONNECT_VERBS, CONTAINER_VERBS, workload_singular

REASON_PLACEHOLDER = "<why>"


def why_denied(
    grants: tuple[IndexedGrant, ...], user: str, attempted: AttemptedAction, now: dt.datetime
) -> str:
    """The most helpful reason among the caller's grants in the namespace: a grant that would
    cover the attempt but is not live, else a live one that differs only in its container or
    command, else that there is no grant at all."""
    # Each grant as matching read it (`IndexedGrant.terms`): the reason is what it decided.
    for grant in grants:
        terms = grant.terms
        if not grant_covers(terms, user, attempted):
            continue
        if grant.used_up:
            limit = terms.max_uses or 0
            return used_up_reason(grant.name, limit)
        match window_mismatch(terms, now, being_deleted=grant.ending):
            case "revoked":
                return f"grant {grant.name} has been revoked"
            case "expired":
                return f"grant {grant.name} expired at {format_time(terms.expires_at)}"
            case "not yet valid":
                return f"grant {grant.name} is not valid before {format_time(terms.not_before)}"
    for grant in grants:
        terms = grant.terms
        if not is_live(terms, now, being_deleted=grant.ending):
            continue
        for granted in terms.actions:
            match action_mismatch(granted, attempted):
                case "container":
                    return f"grant {grant.name} allows only container {granted.container}"
                case "interactive":
                    return (
                        f"grant {grant.name} pins the command {_pinned(granted)}, and an "
                        "interactive session (stdin or tty) could run anything else"
                    )
                case "command":
                    return f"grant {grant.name} allows only the command {_pinned(granted)}"
                case "replicas":
                    return f"grant {grant.name} allows scaling only to {granted.replicas} replicas"
    return f"{user} holds no live grant for it"


def _pinned(granted: RequestedAction) -> str:
    return shell.join(granted.command or ())


def target(attempted: AttemptedAction) -> str:
    """`web-0` for pod subresources, `deployment/web` for delete and scale."""
    if attempted.verb in CONNECT_VERBS:
        return attempted.name
    return f"{workload_singular(attempted.resource)}/{attempted.name}"


def used_up_message(
    attempted: AttemptedAction, grant: str, limit: int, command_duration: str
) -> str:
    """A limited grant whose every use is spent: say so, and how to ask again."""
    again = request_command(attempted, command_duration, max_uses=limit)
    return (
        f"jitgate denied {attempted.describe()}: {used_up_reason(grant, limit)}; "
        f"ask again with: {again}"
    )


def used_up_reason(grant: str, limit: int) -> str:
    """`grant X was for 1 use and has been used`."""
    if limit == 1:
        return f"grant {grant} was for 1 use and has been used"
    return f"grant {grant} was for {limit} uses and all {limit} have been used"


def request_command(
    attempted: AttemptedAction,
    duration: str,
    *,
    break_glass: bool = False,
    max_uses: int | None = None,
) -> str:
    """The exact command line; a pinned exec command goes after `--`, as with kubectl exec.

    An interactive session is asked for without a command: a grant pinning one never
    allows stdin or a TTY.
    """
    words = ["kubectl", "jit", "request", attempted.verb, target(attempted)]
    words += ["-n", attempted.namespace]
    if attempted.container and attempted.verb in CONTAINER_VERBS:
        words += ["-c", attempted.container]
    replicas = target_replicas(attempted) if attempted.verb == "scale" else None
    words += ["--replicas", str(replicas)] if replicas is not None else []
    words += ["--break-glass"] if break_glass else []
    words += ["--max-uses", str(max_uses)] if max_uses is not None else []
    words += ["--for", duration, "--reason"]
    line = shell.join(words) + f' "{REASON_PLACEHOLDER}"'
    if attempted.verb == "exec" and attempted.command and not attempted.interactive:
        line += " -- " + shell.join(attempted.command)
    return line
