"""Whether jitgate's webhook configuration enforces an AccessPolicy.

A policy may name any resource and select any namespace, but jitgate decides only what the
API server sends it: the rules and namespaceSelectors of the ValidatingWebhookConfiguration.
A delete of a resource no rule routes, or any action in a namespace no selector selects, is
admitted without jitgate ever hearing of it. The operator reads the configuration and the
namespaces' labels and writes the result on the policy as its `Enforced` condition, so such
a gap is visible (`kubectl get accesspolicies`) instead of silent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from jitgate.core.api import AccessPolicy, Condition, LabelSelector
from jitgate.core.label_selectors import selector_matches
from jitgate.core.policy import Namespace, covers_namespace
from jitgate.core.vocabulary import (
    CONNECT_VERBS,
    NAMESPACES,
    PODS,
    REPLICATED_RESOURCES,
    SCALABLE_RESOURCES,
    UNPROTECT_VERB,
    Verb,
)

CONDITION = "Enforced"
# The API server labels every namespace with its name; namespaceSelectors exclude by it.
NAME_LABEL = "kubernetes.io/metadata.name"
_CONNECT_SUBRESOURCES: dict[str, Verb] = {
    "pods/exec": "exec",
    "pods/attach": "attach",
    "pods/portforward": "portforward",
}
_LISTED = 8  # names a message lists before "and N more"


@dataclass(frozen=True)
class Route:
    """One (operation, resource) a webhook sends to jitgate, where its selector selects."""

    operation: str
    group: str  # "*" for any group
    resource: str  # "pods", "deployments/scale", "*", "*/scale", "*/*"
    namespaces: LabelSelector | None  # None: the webhook's selector cannot be read

    def routes(self, operation: str, group: str, resource: str) -> bool:
        if self.operation not in (operation, "*") or self.group not in (group, "*"):
            return False
        if self.resource in (resource, "*/*"):
            return True
        main, _, sub = resource.partition("/")
        own_main, _, own_sub = self.resource.partition("/")
        return own_main == "*" and own_sub == sub and bool(main)


@dataclass(frozen=True)
class Routing:
    """What a ValidatingWebhookConfiguration sends to jitgate."""

    routes: tuple[Route, ...]

    def selectors(self, operation: str, resource: str) -> list[LabelSelector | None]:
        """The namespaceSelectors under which ``operation`` on ``resource`` (group-qualified,
        optionally with ``/subresource``) reaches jitgate; empty when it never does."""
        main, _, sub = resource.partition("/")
        plural, _, group = main.partition(".")
        wanted = f"{plural}/{sub}" if sub else plural
        return [r.namespaces for r in self.routes if r.routes(operation, group, wanted)]


def routing(configuration: Mapping[str, Any]) -> Routing:
    """The routes of a ValidatingWebhookConfiguration as the API server stores it."""
    routes: list[Route] = []
    for webhook in configuration.get("webhooks") or ():
        try:
            selector: LabelSelector | None = LabelSelector.model_validate(
                webhook.get("namespaceSelector") or {}
            )
        except ValidationError:
            selector = None  # selects nothing that can be shown to be selected
        for rule in webhook.get("rules") or ():
            for operation in rule.get("operations") or ():
                for group in rule.get("apiGroups") or ():
                    for resource in rule.get("resources") or ():
                        routes.append(Route(operation, group, resource, selector))
    return Routing(tuple(routes))


def _needs(verb: Verb, resource: str) -> tuple[tuple[str, str], ...]:
    """The (operation, resource) pairs through which jitgate must see ``verb``."""
    if verb in CONNECT_VERBS:
        sub = next(s for s, v in _CONNECT_SUBRESOURCES.items() if v == verb)
        return (("CONNECT", sub),)
    if verb == "scale" and resource in REPLICATED_RESOURCES:
        # kubectl scale uses the subresource; a patch of spec.replicas the object itself.
        return (("UPDATE", f"{resource}/scale"), ("UPDATE", resource))
    if verb == "scale":
        return (("UPDATE", resource),)  # a Job's parallelism and suspend
    if verb == UNPROTECT_VERB:
        return (("UPDATE", NAMESPACES),)  # a label change of the namespace itself
    return (("DELETE", resource),)


def _protected(policy: AccessPolicy) -> list[tuple[Verb, str]]:
    """Every (verb, resource) the policy protects."""
    spec = policy.spec
    out: list[tuple[Verb, str]] = []
    for verb in spec.actions:
        if verb in CONNECT_VERBS:
            out.append((verb, PODS))
        elif verb == "scale":
            out.extend((verb, r) for r in spec.resources if r in SCALABLE_RESOURCES)
        elif verb == UNPROTECT_VERB:
            # Implied by every policy, listed or not; the chart routes namespace label
            # changes for every namespace it does not exclude, whatever the policies say.
            continue
        else:
            out.extend((verb, r) for r in spec.resources)
    return out


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    more = len(items) - _LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _selected(selectors: Iterable[LabelSelector | None], namespace: Namespace) -> bool:
    labels = {**namespace.labels, NAME_LABEL: namespace.name}
    return any(s is not None and selector_matches(s, labels) for s in selectors)


def enforcement(
    policy: AccessPolicy,
    configuration: Routing | None,
    namespaces: Iterable[Namespace],
    *,
    configuration_name: str,
) -> tuple[bool, str, str]:
    """``(enforced, reason, message)`` for ``policy`` under the webhook ``configuration``
    (None: it does not exist), given the namespaces that exist and their labels."""
    if configuration is None:
        return (
            False,
            "NoWebhookConfiguration",
            f"ValidatingWebhookConfiguration {configuration_name} does not exist: no action "
            "this policy protects reaches jitgate",
        )
    unrouted: list[str] = []
    selectors: list[list[LabelSelector | None]] = []
    for verb, resource in _protected(policy):
        routes = [configuration.selectors(op, res) for op, res in _needs(verb, resource)]
        if not all(routes):
            unrouted.append(f"{verb} {resource}")
        else:
            selectors.extend(routes)
    covered = sorted(
        (ns for ns in namespaces if covers_namespace(policy, ns)), key=lambda ns: ns.name
    )
    unselected = [ns.name for ns in covered if not all(_selected(found, ns) for found in selectors)]
    problems = []
    if unrouted:
        problems.append(f"not routed to jitgate's webhooks: {_listed(unrouted)}")
    if unselected:
        problems.append(f"namespaces the webhooks do not select: {_listed(unselected)}")
    if problems:
        reason = "NotRouted" if unrouted else "NamespacesNotSelected"
        return False, reason, "; ".join(problems)
    return True, "Enforced", "every action it protects reaches jitgate in every namespace it covers"


def enforced_condition(
    enforced: tuple[bool, str, str], previous: Sequence[Condition], now: dt.datetime
) -> Condition:
    """The `Enforced` condition, keeping its transition time while its status holds."""
    status = "True" if enforced[0] else "False"
    before = next((c for c in previous if c.type == CONDITION), None)
    since = before.last_transition_time if before is not None and before.status == status else None
    return Condition(
        type=CONDITION,
        status=status,
        reason=enforced[1],
        message=enforced[2],
        last_transition_time=since or now,
    )
