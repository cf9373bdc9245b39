"""`kubectl jit exec|attach|port-forward`: kubectl's own command, through jitgate's gateway.

The plugin runs the real `kubectl exec` (`attach`, `port-forward`) with every argument as
given, and one more: `--server` set to the API server's URL for the current context followed by
the session gateway's path for the namespace (`jitgate.webhook.gateway.paths`). kubectl's
client then does what users know: `-it`, `-c`, `--`, terminal resize, Ctrl-C, local ports and
the remote command's exit code; the API server authenticates the user as always and proxies to
the gateway, which records the session and ends it when the grant does. kubectl replaces this
process (`exec`), so its exit code is the command's. Needs kubectl 1.31 or later (WebSocket
streams); `$KUBECTL` names another kubectl binary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from jitgate.cli.errors import CliError, UsageError
from jitgate.kube import CredentialsError, load_credentials

# The gateway's path layout (jitgate.webhook.gateway.paths, not importable by the light client).
GATEWAY_PREFIX = "/apis/sessions.jitgate.dev/v1alpha1/namespaces/{namespace}/sessions/kubectl"
VERBS = {"exec": "exec", "attach": "attach", "port-forward": "port-forward"}


@dataclass(frozen=True)
class Connection:
    """What kubectl's global flags said about the cluster, and the words to pass on."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None
    rest: tuple[str, ...]


def _value(words: list[str], index: int, flag: str) -> str:
    if index + 1 >= len(words):
        raise UsageError(f"flag {flag} needs a value")
    return words[index + 1]


def split_connection(args: Sequence[str]) -> Connection:
    """Pick --kubeconfig, --context and -n/--namespace out of the words before `--`."""
    words = list(args)
    end = words.index("--") if "--" in words else len(words)
    found: dict[str, str] = {}
    rest: list[str] = []
    index = 0
    names = {
        "--kubeconfig": "kubeconfig",
        "--context": "context",
        "--namespace": "namespace",
        "-n": "namespace",
    }
    while index < end:
        word = words[index]
        flag, equals, inline = word.partition("=")
        if flag in names and equals:
            found[names[flag]] = inline
        elif word in names:
            found[names[word]] = _value(words, index, word)
            index += 1
        elif word.startswith("-n") and len(word) > 2 and not word.startswith("--"):
            found["namespace"] = word[2:]
        else:
            rest.append(word)
        index += 1
    rest += words[end:]
    return Connection(
        found.get("kubeconfig"), found.get("context"), found.get("namespace"), tuple(rest)
    )


_CONNECTION_FLAGS = ("--kubeconfig", "--context", "--namespace", "-n")


def stream_command(args: Sequence[str]) -> tuple[str, list[str]] | None:
    """(`exec`|`attach`|`port-forward`, the other words) when the command is one of them,
    connection flags allowed before it (`kubectl jit --kubeconfig K exec ...`)."""
    index = 0
    while index < len(args):
        word = args[index]
        if word in _CONNECTION_FLAGS:
            index += 2
        elif word.startswith(tuple(f + "=" for f in _CONNECTION_FLAGS)) or (
            word.startswith("-n") and not word.startswith("--")
        ):
            index += 1
        else:
            break
    if index < len(args) and args[index] in VERBS:
        return args[index], [*args[:index], *args[index + 1 :]]
    return None


def kubectl_argv(verb: str, args: Sequence[str], kubectl: str) -> list[str]:
    """The kubectl command line that runs `verb` with `args` through the gateway."""
    connection = split_connection(args)
    try:
        credentials = load_credentials(connection.kubeconfig, connection.context)
    except CredentialsError as error:
        raise CliError(str(error)) from error
    namespace = connection.namespace or credentials.namespace
    server = credentials.server.rstrip("/") + GATEWAY_PREFIX.format(namespace=namespace)
    argv = [kubectl]
    if connection.kubeconfig:
        argv.append(f"--kubeconfig={connection.kubeconfig}")
    if connection.context:
        argv.append(f"--context={connection.context}")
    return [*argv, f"--server={server}", f"--namespace={namespace}", VERBS[verb], *connection.rest]


def run(verb: str, args: Sequence[str]) -> int:
    """Replace this process with kubectl (returns only when it cannot be started)."""
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        raise CliError(f"kubectl jit {verb} runs kubectl, which is not on PATH (or set $KUBECTL)")
    argv = kubectl_argv(verb, args, kubectl)
    try:
        os.execv(kubectl, argv)
    except OSError as error:
        raise CliError(f"cannot run {kubectl}: {error.strerror}") from error
    return 0  # not reached: execv returns only by raising
