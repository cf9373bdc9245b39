"""What a caller is attempting, in the terms grants and policies speak."""

from __future__ import annotations

from dataclasses import dataclass, field

from jitgate.core.api import Verb


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
        """`exec into pod prod/web-0 (container app, command ["ls"])` style summary."""
        target = f"{self.resource.split('.')[0].rstrip('s')} {self.namespace}/{self.name}"
        verbs = {
            "exec": "exec into",
            "attach": "attach to",
            "portforward": "port-forward to",
            "delete": "delete",
            "scale": "scale",
        }
        extras = []
        if self.container:
            extras.append(f"container {self.container}")
        if self.command is not None:
            extras.append("command " + " ".join(self.command))
        suffix = f" ({', '.join(extras)})" if extras else ""
        return f"{verbs[self.verb]} {target}{suffix}"


def group_qualified(resource: str, group: str) -> str:
    """`deployments` in group `apps` is `deployments.apps`; core resources stay bare."""
    return f"{resource}.{group}" if group else resource
