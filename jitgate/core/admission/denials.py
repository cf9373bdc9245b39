"""What a denied user reads: why no grant covers the attempt, and the command to ask for one.

The reason is the most helpful one among the caller's grants in the namespace; the command
is a `kubectl jit request …` line that `kubectl jit` accepts and whose request covers
exactly the denied action.
"""

from __future__ import annotations

import datetime as dt
import shlex

from jitgate.core.actions import AttemptedAction
from jitgate.core.clock import format_time
from jitgate.core.grant_index import IndexedGrant
from jitgate.core.matching import action_covers, grant_covers, is_live
from jitgate.core.vocabulary import CONNECT_VERBS, CONTAINER_VERBS, workload_singular

REASON_PLACEHOLDER = "<why>"


def why_denied(
    grants: tuple[IndexedGrant, ...], user: str, attempted: AttemptedAction, now: dt.datetime
) -> str:
    """The most helpful reason among the caller's grants in the namespace."""
    for grant in grants:
        if grant_covers(grant.spec, user, attempted) and not is_live(
            grant.spec, now, being_deleted=grant.being_deleted
        ):
            if grant.being_deleted:
                return f"grant {grant.name} has been revoked"
            if now >= grant.spec.expires_at:
                return f"grant {grant.name} expired at {format_time(grant.spec.expires_at)}"
            return f"grant {grant.name} is not valid before {format_time(grant.spec.not_before)}"
    for grant in grants:
        if not is_live(grant.spec, now, being_deleted=grant.being_deleted):
            continue
        for granted in grant.spec.actions:
            if granted.verb != attempted.verb or granted.effective_resource != attempted.resource:
                continue
            if granted.names and attempted.name not in granted.names:
                continue
            if granted.container is not None and granted.container != attempted.container:
                return f"grant {grant.name} allows only container {granted.container}"
            if granted.command is not None and not action_covers(granted, attempted):
                pinned = shlex.join(granted.command)
                if attempted.interactive:
                    return (
                        f"grant {grant.name} pins the command {pinned}, and an interactive "
                        "session (stdin or tty) could run anything else"
                    )
                return f"grant {grant.name} allows only the command {pinned}"
    return f"{user} holds no live grant for it"


def target(attempted: AttemptedAction) -> str:
    """`web-0` for pod subresources, `deployment/web` for delete and scale."""
    if attempted.verb in CONNECT_VERBS:
        return attempted.name
    return f"{workload_singular(attempted.resource)}/{attempted.name}"


def request_command(attempted: AttemptedAction, duration: str) -> str:
    """The exact command line; a pinned exec command goes after `--`, as with kubectl exec.

    An interactive session is asked for without a command: a grant pinning one never
    allows stdin or a TTY.
    """
    words = ["kubectl", "jit", "request", attempted.verb, target(attempted)]
    words += ["-n", attempted.namespace]
    if attempted.container and attempted.verb in CONTAINER_VERBS:
        words += ["-c", attempted.container]
    words += ["--for", duration, "--reason"]
    line = shlex.join(words) + f' "{REASON_PLACEHOLDER}"'
    if attempted.verb == "exec" and attempted.command and not attempted.interactive:
        line += " -- " + shlex.join(attempted.command)
    return line
