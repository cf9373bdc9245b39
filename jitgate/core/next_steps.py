"""The kubectl command lines a grant allows: what its requester runs next, printed once a
request is approved (`kubectl jit request --wait`, `wait`, `show`, `approve`) and sent with the
approval (notifications), and the command a refused direct stream is told to use instead.

Pure: a request in, command lines out. What the grant pins (pod, container, exact command) is
written as it is; what it leaves open is a placeholder in capitals (`POD`, `LOCAL:REMOTE`).
Where a governing policy requires sessions to be recorded (`sessions.recording: Required`),
exec, attach and port-forward go through jitgate's session gateway: `connect_command` is the
one place that says `kubectl jit exec` rather than `kubectl exec`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from jitgate.core.api import AccessPolicy, AccessRequest, RequestedAction
from jitgate.core.policy import Governing
from jitgate.core.vocabulary import singular

# kubectl's word for each verb that connects to a pod.
_KUBECTL_CONNECT = {"exec": "exec", "attach": "attach", "portforward": "port-forward"}


def connect_command(verb: str, *, recorded: bool) -> list[str]:
    """`kubectl exec` (attach, port-forward), or `kubectl jit exec` where the session must be
    recorded: through jitgate's session gateway, the only way such a stream opens."""
    word = _KUBECTL_CONNECT[verb]
    return ["kubectl", "jit", word] if recorded else ["kubectl", word]


def recording_required(policies: Iterable[AccessPolicy], names: Iterable[str]) -> bool:
    """Whether one of `policies` named in `names` (a request's governing policies, as its
    status names them) requires sessions to be recorded."""
    wanted = set(names)
    governing = Governing.of(p for p in policies if p.metadata.name in wanted)
    return governing is not None and governing.recording_required


def _pods(action: RequestedAction) -> list[str]:
    return list(action.names) or ["POD"]


def _command_lines(action: RequestedAction, namespace: str, *, recorded: bool) -> list[str]:
    where = ["-n", namespace]
    container = ["-c", action.container] if action.container else []
    match action.verb:
        case "exec":
            kubectl = connect_command("exec", recorded=recorded)
            if action.command is not None:
                return [
                    shlex.join([*kubectl, *where, pod, *container, "--", *action.command])
                    for pod in _pods(action)
                ]
            # No pinned command: the grant allows an interactive session.
            return [
                shlex.join([*kubectl, "-it", *where, pod, *container, "--", "sh"])
                for pod in _pods(action)
            ]
        case "attach":
            kubectl = connect_command("attach", recorded=recorded)
            return [shlex.join([*kubectl, "-it", *where, pod, *container]) for pod in _pods(action)]
        case "portforward":
            kubectl = connect_command("portforward", recorded=recorded)
            return [
                shlex.join([*kubectl, *where, f"pod/{pod}"]) + " LOCAL:REMOTE"
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


def next_commands(request: AccessRequest, *, recorded: bool = False) -> list[str]:
    """Each kubectl command line the request's grant allows, in the order of its actions;
    `recorded`: a governing policy requires sessions to be recorded."""
    namespace = request.metadata.namespace or "default"
    return [
        line
        for action in request.spec.actions
        for line in _command_lines(action, namespace, recorded=recorded)
    ]
