"""Approve from Slack in the chart: the operator's flags and mounts, the click endpoint's
Service and NetworkPolicy port, the user mapping, and impersonation RBAC naming exactly the
mapped users and groups."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from chart import render, value_sets

SLACK = {"operator": {"slack": value_sets.SLACK}}
OPERATOR = render.OPERATOR_NAME


def test_nothing_of_slack_is_rendered_by_default() -> None:
    objects = render.render_chart({})
    assert not [o for o in objects if "slack" in o["metadata"]["name"]]
    (container,) = render.find(objects, "StatefulSet", OPERATOR)["spec"]["template"]["spec"][
        "containers"
    ]
    assert not [a for a in container["args"] if a.startswith("--slack")]


def test_the_operator_serves_the_click_endpoint_with_the_secrets_mounted() -> None:
    objects = render.render_chart(SLACK)
    sts = render.find(objects, "StatefulSet", OPERATOR)
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for flag in (
        "--slack-channel=C0ACCESS",
        "--slack-bot-token-file=/etc/jitgate/slack/botToken",
        "--slack-signing-secret-file=/etc/jitgate/slack/signingSecret",
        "--slack-users=/etc/jitgate/slack-users/users.yaml",
        "--slack-tls-cert=/etc/jitgate/slack-tls/tls.crt",
        "--slack-tls-key=/etc/jitgate/slack-tls/tls.key",
        "--slack-port=8444",
    ):
        assert flag in container["args"]
    assert {"name": "slack", "containerPort": 8444, "protocol": "TCP"} in container["ports"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["slack"]["secret"]["secretName"] == "jitgate-slack"
    assert volumes["slack-tls"]["secret"]["secretName"] == "jitgate-slack-tls"
    users = render.find(objects, "ConfigMap", f"{OPERATOR}-slack-users")
    assert yaml.safe_load(users["data"]["users.yaml"]) == {"users": value_sets.SLACK["users"]}
    service = render.find(objects, "Service", f"{OPERATOR}-slack")
    assert service["spec"]["ports"][0]["targetPort"] == "slack"
    policy = render.find(objects, "NetworkPolicy", OPERATOR)
    assert {"ports": [{"port": 8444, "protocol": "TCP"}]} in policy["spec"]["ingress"]


def test_impersonation_is_limited_to_the_mapped_users_groups_and_the_via_extra() -> None:
    role = render.find(render.render_chart(SLACK), "ClusterRole", f"{OPERATOR}-slack-impersonator")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["users"],
            "verbs": ["impersonate"],
            "resourceNames": ["bob@example.com", "carol@example.com"],
        },
        {
            "apiGroups": [""],
            "resources": ["groups"],
            "verbs": ["impersonate"],
            "resourceNames": ["dba", "sre"],
        },
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["userextras/jitgate.dev/via"],
            "verbs": ["impersonate"],
            "resourceNames": ["slack"],
        },
    ]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("channel", "needs operator.slack.channel"),
        ("existingSecret", "needs operator.slack.existingSecret"),
        ("users", "needs operator.slack.users"),
    ],
)
def test_an_incomplete_slack_app_is_refused_naming_what_is_missing(
    missing: str, message: str
) -> None:
    values: dict[str, Any] = {**value_sets.SLACK, missing: {} if missing == "users" else ""}
    with pytest.raises(helm.HelmError, match=message):
        render.render_chart({"operator": {"slack": values}})


def test_a_mapping_to_a_system_identity_is_refused_by_the_schema() -> None:
    values = {**value_sets.SLACK, "users": {"U0X": {"user": "system:admin"}}}
    with pytest.raises(helm.HelmValuesError):
        render.render_chart({"operator": {"slack": values}})
