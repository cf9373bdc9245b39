"""What the chart gives the people who use jitgate: the requester, approver and auditor
ClusterRoles (rendered by real Helm), and NOTES that verify every writer's log and name the
one plugin install command the README names."""

from __future__ import annotations

import re
from typing import Any

import pytest
from chart import render

ROLES = ("jitgate-requester", "jitgate-approver", "jitgate-auditor")
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def user_roles(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    objects = render.render_chart(values or {})
    return {
        role["metadata"]["name"]: role
        for role in render.by_kind(objects, "ClusterRole")
        if role["metadata"]["labels"].get("app.kubernetes.io/component") == "user-roles"
    }


def allowed(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_three_roles_for_people_and_no_binding() -> None:
    roles = user_roles()
    assert sorted(roles) == sorted(ROLES)
    bindings = render.by_kind(render.render_chart({}), "ClusterRoleBinding")
    assert not any(b["roleRef"]["name"] in ROLES for b in bindings)  # who gets them is yours
    for role in roles.values():
        assert not any(key.startswith(AGGREGATE) for key in role["metadata"]["labels"])
        core = [rule for rule in role["rules"] if rule["apiGroups"] != ["jitgate.dev"]]
        # Beyond jitgate's kinds, only the approver reads namespaces' labels (its queue), and
        # only the requester reaches the session gateway (kubectl jit exec, attach, ...).
        expected = {
            "jitgate-approver": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}
            ],
            "jitgate-requester": [
                {
                    "apiGroups": ["sessions.jitgate.dev"],
                    "resources": ["sessions/api", "sessions/apis"],
                    "verbs": ["get", "create"],
                }
            ],
        }
        assert core == expected.get(role["metadata"]["name"], [])


def test_what_each_role_may_do() -> None:
    roles = user_roles()
    requester, approver, auditor = (allowed(roles[name]) for name in ROLES)
    assert ("accessrequests", "create") in requester
    assert ("accessrequests/status", "patch") not in requester  # no approving
    assert {("accessrequests/status", "patch"), ("accessrequests", "list")} <= approver
    assert ("accessrequests", "create") not in approver
    assert {verb for _, verb in auditor} == {"get", "list", "watch"}
    for role in (requester, approver, auditor):
        # Nobody but the operator writes or deletes grants; nobody deletes requests.
        assert not {("grants", v) for v in ("create", "update", "patch", "delete")} & role
        assert ("accessrequests", "delete") not in role


def test_aggregation_into_the_default_roles_is_opt_in_and_never_approves() -> None:
    roles = user_roles({"userRoles": {"aggregateToDefaultRoles": True}})
    labels = {name: set(role["metadata"]["labels"]) for name, role in roles.items()}
    assert {AGGREGATE + "edit", AGGREGATE + "admin"} <= labels["jitgate-requester"]
    assert AGGREGATE + "view" not in labels["jitgate-requester"]
    assert {AGGREGATE + r for r in ("view", "edit", "admin")} <= labels["jitgate-auditor"]
    assert not any(label.startswith(AGGREGATE) for label in labels["jitgate-approver"])


def test_the_roles_can_be_left_out() -> None:
    assert user_roles({"userRoles": {"create": False}}) == {}
    assert "userRoles.create is off" in render.notes({"userRoles": {"create": False}})


def test_names_follow_the_release() -> None:
    roles = render.by_kind(render.render_chart({}, name="access"), "ClusterRole")
    names = {role["metadata"]["name"] for role in roles}
    assert {"access-jitgate-requester", "access-jitgate-approver"} <= names


@pytest.mark.parametrize(("webhooks", "operators"), [(2, 2), (3, 1), (1, 1)])
def test_notes_verify_every_writers_log(webhooks: int, operators: int) -> None:
    values = {"webhook": {"replicas": webhooks}, "operator": {"replicas": operators}}
    text = render.notes(values)
    (loop,) = re.findall(r"for pod in ([^;]*);", text)
    pods = [f"jitgate-webhook-{i}" for i in range(webhooks)]
    pods += [f"jitgate-operator-{i}" for i in range(operators)]
    assert loop.split() == pods
    assert 'exec "$pod" -- jitgate audit verify --audit file:///var/lib/jitgate/audit' in text


def test_notes_verify_the_postgres_table_once_for_every_writer() -> None:
    values = {"audit": {"sink": "postgres", "postgres": {"existingSecret": "pg"}}}
    text = render.notes(values)
    assert "for pod in" not in text
    assert text.count("jitgate audit verify") == 1 and "every writer's chain" in text


def _install_commands(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip().startswith("pip install")}


def test_one_plugin_install_command_in_notes_and_both_readmes() -> None:
    (command,) = _install_commands(render.notes({}))
    assert command == "pip install jitgate"
    readme = (render.REPO / "README.md").read_text()
    chart_readme = (render.CHART_DIR / "README.md").read_text()
    assert _install_commands(readme) == {command}
    assert any(line.startswith(command) for line in _install_commands(chart_readme))
    for heading in ("## Install on a cluster", "### Upgrade", "### Uninstall"):
        assert heading in readme
