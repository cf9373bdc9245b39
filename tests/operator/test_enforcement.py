"""Each AccessPolicy's `Enforced` condition: whether the chart's webhook configuration routes
every action, resource and namespace the policy protects, kept up to date as the
configuration and the namespaces' labels change, and shown by `kubectl get accesspolicies`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from chart import render

NS = "prod"
POLICIES = "jitgate.dev/v1alpha1/accesspolicies"
WEBHOOKS = "admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
PROTECTED = {"jitgate.dev/protected": "true"}


def chart_configuration() -> dict[str, Any]:
    """The chart's ValidatingWebhookConfiguration (default values), named `jitgate`."""
    (configuration,) = [
        c
        for c in render.webhook_configurations_for_url("https://127.0.0.1:1", b"ca")
        if c["kind"] == "ValidatingWebhookConfiguration"
    ]
    return configuration


def enforced(jit, name: str = "production") -> dict[str, Any] | None:
    policy = jit.api.read_object(POLICIES, None, name)
    conditions = policy.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Enforced"), None)


MISSING = ("", "", "")


def state(jit, name: str = "production") -> tuple[str, str, str]:
    """(status, reason, message) of the Enforced condition; MISSING until it is written."""
    condition = enforced(jit, name) or {}
    return (condition.get("status", ""), condition.get("reason", ""), condition.get("message", ""))


def label(jit, labels: Mapping[str, str | None]) -> None:
    jit.api.patch_object("v1/namespaces", None, NS, {"metadata": {"labels": labels}})


async def test_a_policy_is_enforced_only_where_the_webhooks_route_and_select(jit) -> None:
    jit.policy(namespaces={"names": [NS]}, actions=["exec", "delete", "scale"], resources=[
        "pods", "deployments.apps", "widgets.example.com"
    ])  # fmt: skip
    async with jit.running():
        await jit.until(lambda: state(jit) != MISSING)
        assert state(jit) == (
            "False",
            "NoWebhookConfiguration",
            "ValidatingWebhookConfiguration jitgate does not exist: no action this policy "
            "protects reaches jitgate",
        )

        jit.api.create_object(WEBHOOKS, chart_configuration())
        await jit.until(lambda: state(jit)[1] == "NotRouted")
        assert state(jit) == (
            "False",
            "NotRouted",
            "not routed to jitgate's webhooks: delete widgets.example.com; "
            "namespaces the webhooks do not select: prod",
        )

        jit.api.patch_object(
            POLICIES, None, "production", {"spec": {"resources": ["pods", "deployments.apps"]}}
        )
        await jit.until(lambda: state(jit)[1] == "NamespacesNotSelected")
        assert state(jit)[2] == "namespaces the webhooks do not select: prod"

        label(jit, PROTECTED)
        await jit.until(lambda: state(jit)[0] == "True")
        condition = enforced(jit)
        assert condition is not None
        assert condition["reason"] == "Enforced"
        since = condition["lastTransitionTime"]

        # Removing the label (were it allowed) is seen at once: the policy protects nothing.
        label(jit, {"jitgate.dev/protected": None})
        await jit.until(lambda: state(jit)[0] == "False")
        assert state(jit)[1] == "NamespacesNotSelected"
        assert (enforced(jit) or {})["lastTransitionTime"] >= since


async def test_selected_namespaces_are_checked_by_their_labels(jit) -> None:
    jit.api.create_object(WEBHOOKS, chart_configuration())
    jit.api.create_object(
        "v1/namespaces", {"metadata": {"name": "payments", "labels": {"tier": "prod"}}}
    )
    jit.api.create_object(
        "v1/namespaces", {"metadata": {"name": "staging", "labels": {"tier": "stage"}}}
    )
    jit.policy(namespaces={"selector": {"matchLabels": {"tier": "prod"}}}, actions=["exec"])
    async with jit.running():
        # Both prod and payments carry tier=prod; neither is labelled for the webhooks.
        await jit.until(lambda: state(jit) != MISSING)
        assert state(jit) == (
            "False",
            "NamespacesNotSelected",
            "namespaces the webhooks do not select: payments, prod",
        )
        label(jit, PROTECTED)
        jit.api.patch_object("v1/namespaces", None, "payments", {"metadata": {"labels": PROTECTED}})
        await jit.until(lambda: state(jit)[0] == "True")


@pytest.mark.kubectl
async def test_kubectl_get_accesspolicies_shows_enforced(jit, kubectl) -> None:
    jit.api.create_object(WEBHOOKS, chart_configuration())
    label(jit, PROTECTED)
    jit.policy(namespaces={"names": [NS]}, actions=["exec"])
    jit.policy("configs", namespaces={"names": [NS]}, actions=["delete"], resources=[
        "widgets.example.com"
    ])  # fmt: skip
    async with jit.running():
        await jit.until(lambda: state(jit) != MISSING and state(jit, "configs") != MISSING)
        table = (await kubectl("get", "accesspolicies")).stdout.splitlines()
        assert table[0].split()[:2] == ["NAME", "ENFORCED"]
        rows = {line.split()[0]: line.split()[1] for line in table[1:]}
        assert rows == {"production": "True", "configs": "False"}
        wide = (await kubectl("get", "accesspolicies", "-o", "wide")).stdout
        assert "not routed to jitgate's webhooks: delete widgets.example.com" in wide


async def test_an_unenforced_policy_is_reported_once_however_many_events_arrive_together(
    jit, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("dev", "staging", "qa", "tools"):
        jit.api.create_object("v1/namespaces", {"metadata": {"name": name}})
    jit.policy(namespaces={"names": [NS]}, actions=["exec"])
    with caplog.at_level("WARNING", logger="jitgate.operator"):
        async with jit.running():
            await jit.until(lambda: state(jit) != MISSING)
    reports = [r for r in caplog.records if "is not enforced" in r.getMessage()]
    assert [r.getMessage() for r in reports] == [
        "AccessPolicy production is not enforced: ValidatingWebhookConfiguration jitgate does "
        "not exist: no action this policy protects reaches jitgate"
    ]
