"""What a denied user reads: the action in plain words and the `kubectl jit request …` to ask."""

from __future__ import annotations

import shlex

from jitgate.core.actions import AttemptedAction
from jitgate.core.vocabulary import CONNECT_VERBS, CONTAINER_VERBS, workload_singular

REASON_PLACEHOLDER = "<why>"


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
