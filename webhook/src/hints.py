"""What a denied user reads: the action in plain words and the `kubectl jit request …` to ask."""

from __future__ import annotations

import shlex

from jitgate.core.actions import AttemptedAction

# kubectl's short names for the workloads policies usually protect; anything else is written
# as the group-qualified plural (`cronjobs.batch/nightly`), which kubectl also accepts.
_KUBECTL_TYPES = {
    "pods": "pod",
    "deployments.apps": "deployment",
    "statefulsets.apps": "statefulset",
    "replicasets.apps": "replicaset",
    "daemonsets.apps": "daemonset",
}
_PHRASES = {
    "exec": "exec into",
    "attach": "attach to",
    "portforward": "port-forward to",
    "delete": "delete",
    "scale": "scale",
}

REASON_PLACEHOLDER = "<why>"


def kubectl_type(resource: str) -> str:
    return _KUBECTL_TYPES.get(resource, resource)


def describe(attempted: AttemptedAction) -> str:
    """`exec into pod web-0 in namespace prod (container app, command ls -l)`."""
    text = (
        f"{_PHRASES[attempted.verb]} {kubectl_type(attempted.resource)} {attempted.name} "
        f"in namespace {attempted.namespace}"
    )
    extras = []
    if attempted.container:
        extras.append(f"container {attempted.container}")
    if attempted.command is not None:
        extras.append("command " + shlex.join(attempted.command))
    if attempted.interactive:
        extras.append("interactive")
    replicas = attempted.detail.get("replicas")
    if isinstance(replicas, dict):
        extras.append(f"replicas {replicas.get('old')} to {replicas.get('new')}")
    return text + (f" ({', '.join(extras)})" if extras else "")


def target(attempted: AttemptedAction) -> str:
    """`web-0` for pod subresources, `deployment/web` for delete and scale."""
    if attempted.verb in ("exec", "attach", "portforward"):
        return attempted.name
    return f"{kubectl_type(attempted.resource)}/{attempted.name}"


def request_command(attempted: AttemptedAction, duration: str) -> str:
    """The exact command line; a pinned exec command goes after `--`, as with kubectl exec.

    An interactive session is asked for without a command: a grant pinning one never
    allows stdin or a TTY.
    """
    words = ["kubectl", "jit", "request", attempted.verb, target(attempted)]
    words += ["-n", attempted.namespace]
    if attempted.container and attempted.verb in ("exec", "attach"):
        words += ["-c", attempted.container]
    words += ["--for", duration, "--reason"]
    line = shlex.join(words) + f' "{REASON_PLACEHOLDER}"'
    if attempted.verb == "exec" and attempted.command and not attempted.interactive:
        line += " -- " + shlex.join(attempted.command)
    return line
