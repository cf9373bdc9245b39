"""The kubectl command a grant allows, printed once a request is approved: what to run next.

Pure: a request in, command lines out. What the grant pins (pod, container, exact command)
is written as it is; what it leaves open is a placeholder in capitals (`POD`, `LOCAL:REMOTE`).
"""

from __future__ import annotations

import shlex

from jitgate.core.api import AccessRequest, RequestedAction
from jitgate.core.vocabulary import singular


def _pods(action: RequestedAction) -> list[str]:
    return list(action.names) or ["POD"]


def _command_lines(action: RequestedAction, namespace: str) -> list[str]:
    where = ["-n", namespace]
    container = ["-c", action.container] if action.container else []
    match action.verb:
        case "exec":
            if action.command is not None:
                return [
                    shlex.join(["kubectl", "exec", *where, pod, *container, "--", *action.command])
                    for pod in _pods(action)
                ]
            # No pinned command: the grant allows an interactive session.
            return [
                shlex.join(["kubectl", "exec", "-it", *where, pod, *container, "--", "sh"])
                for pod in _pods(action)
            ]
        case "attach":
            return [
                shlex.join(["kubectl", "attach", "-it", *where, pod, *container])
                for pod in _pods(action)
            ]
        case "portforward":
            return [
                shlex.join(["kubectl", "port-forward", *where, f"pod/{pod}"]) + " LOCAL:REMOTE"
                for pod in _pods(action)
            ]
        case "delete":
            kind = singular(action.effective_resource)
            names = [f"{kind}/{name}" for name in action.names] or [kind, "NAME"]
            return [shlex.join(["kubectl", "delete", *where, *names])]
        case "scale":
            kind = singular(action.effective_resource)
            count = str(action.replicas) if action.replicas is not None else "COUNT"
            return [
                shlex.join(["kubectl", "scale", *where, f"{kind}/{name}"]) + f" --replicas={count}"
                for name in action.names or ["NAME"]
            ]
    return []


def next_commands(request: AccessRequest) -> list[str]:
    """Each kubectl command line the request's grant allows, in the order of its actions."""
    namespace = request.metadata.namespace or "default"
    return [line for action in request.spec.actions for line in _command_lines(action, namespace)]
