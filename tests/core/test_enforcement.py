"""Whether a webhook configuration enforces a policy: routes by operation, group and
resource (wildcards as the API server reads them), selectors by the namespaces' labels."""

from __future__ import annotations

from typing import Any

from support import objects

from jitgate.core.enforcement import enforcement, routing
from jitgate.core.policy import Namespace

PROTECTED = {"matchLabels": {"jitgate.dev/protected": "true"}}
PROD = Namespace("prod", {"jitgate.dev/protected": "true"})


def configuration(*rules: tuple[str, str, str], selector: Any = PROTECTED) -> dict[str, Any]:
    return {
        "webhooks": [
            {
                "name": "actions.jitgate.dev",
                "namespaceSelector": selector,
                "rules": [
                    {"operations": [op], "apiGroups": [group], "resources": [res]}
                    for op, group, res in rules
                ],
            }
        ]
    }


def verdict(
    config: dict[str, Any] | None, *, existing: tuple[Namespace, ...] = (PROD,), **spec: Any
) -> tuple[bool, str, str]:
    policy = objects.policy_model(**spec)
    found = routing(config) if config is not None else None
    return enforcement(policy, found, existing, configuration_name="jitgate")


def test_every_protected_verb_and_resource_must_be_routed() -> None:
    exec_only = configuration(("CONNECT", "", "pods/exec"))
    assert verdict(exec_only, actions=["exec"])[0]
    enforced, reason, message = verdict(
        exec_only, actions=["exec", "delete", "scale"], resources=["pods", "deployments.apps"]
    )
    assert (enforced, reason) == (False, "NotRouted")
    assert message == (
        "not routed to jitgate's webhooks: delete pods, delete deployments.apps, "
        "scale deployments.apps"
    )


def test_scale_needs_the_subresource_and_the_object_routed() -> None:
    spec: dict[str, Any] = {"actions": ["scale"], "resources": ["deployments.apps"]}
    only_subresource = configuration(("UPDATE", "apps", "deployments/scale"))
    assert verdict(only_subresource, **spec)[:2] == (False, "NotRouted")
    both = configuration(("UPDATE", "apps", "deployments/scale"), ("UPDATE", "apps", "deployments"))
    assert verdict(both, **spec)[0]


def test_wildcards_route_what_the_api_server_would_send() -> None:
    spec: dict[str, Any] = {
        "actions": ["delete", "scale"],
        "resources": ["jobs.batch", "deployments.apps"],
    }
    assert verdict(configuration(("*", "*", "*/*")), **spec)[0]
    routed = (("DELETE", "*", "*"), ("UPDATE", "*", "*/scale"), ("UPDATE", "apps", "*"))
    # A Job has no scale subresource: its parallelism and suspend are UPDATEs of the Job.
    assert not verdict(configuration(*routed), **spec)[0]
    assert verdict(configuration(*routed, ("UPDATE", "batch", "*")), **spec)[0]
    # "*" is every resource but no subresource.
    assert not verdict(configuration(("DELETE", "*", "*"), ("UPDATE", "*", "*")), **spec)[0]


def test_namespaces_the_selector_does_not_select_are_named() -> None:
    config = configuration(("CONNECT", "", "pods/exec"))
    plain = Namespace("payments", {})
    enforced, reason, message = verdict(
        config,
        existing=(PROD, plain),
        actions=["exec"],
        namespaces={"names": ["prod", "payments", "absent"]},
    )
    assert (enforced, reason) == (False, "NamespacesNotSelected")
    assert message == "namespaces the webhooks do not select: payments"
    # Exclusion by name works as in the API server, which labels each namespace with it.
    excluding = configuration(
        ("CONNECT", "", "pods/exec"),
        selector={
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["prod"]}
            ]
        },
    )
    assert verdict(excluding, actions=["exec"])[2] == "namespaces the webhooks do not select: prod"


def test_no_configuration_enforces_nothing() -> None:
    assert verdict(None, actions=["exec"])[:2] == (False, "NoWebhookConfiguration")
