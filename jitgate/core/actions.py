"""What a caller is attempting, in the terms grants and policies speak."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from jitgate.core import shell
from jitgate.core.api import RequestedAction
from jitgate.core.vocabulary import NAMESPACES, PHRASES, Verb, singular, workload_singular


def requested_summary(action: RequestedAction) -> str:
    """`exec pod/web-0`, `delete deployment/web,api`, `delete pod/*` (any pod): the verb and
    its target as `kubectl get` names objects."""
    names = ",".join(action.names) if action.names else "*"
    return f"{action.verb} {singular(action.effective_resource)}/{names}"


def actions_summary(actions: Sequence[RequestedAction]) -> str:
    """Every action of a request or grant on one line, for `kubectl get`'s ACTIONS column."""
    return ", ".join(requested_summary(action) for action in actions)


@dataclass(frozen=True)
class AttemptedAction:
    """One concrete action, as decoded from an AdmissionReview."""

    verb: Verb
    namespace: str
    resource: str  # plural, group-qualified for non-core groups: "deployments.apps"
    name: str
    container: str | None = None
    command: tuple[str, ...] | None = None
    interactive: bool = False  # stdin or tty requested
    detail: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def describe(self) -> str:
        """`exec into pod web-0 in namespace prod (container app, command ls -l)`;
        `unprotect namespace prod` (a namespace is in no namespace)."""
        text = f"{PHRASES[self.verb]} {workload_singular(self.resource)} {self.name}"
        if self.resource != NAMESPACES:
            text += f" in namespace {self.namespace}"
        extras = []
        if self.container:
            extras.append(f"container {self.container}")
        if self.command is not None:
            extras.append("command " + shell.join(self.command))
        if self.interactive:
            extras.append("interactive")
        replicas = self.detail.get("replicas")
        if isinstance(replicas, dict):
            extras.append(f"replicas {replicas.get('old')} to {replicas.get('new')}")
        return text + (f" ({', '.join(extras)})" if extras else "")
