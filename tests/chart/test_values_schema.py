"""values.schema.json: generated from values_schema.py, closed everywhere, in step with
values.yaml, and rejecting wrong types and unknown keys through Helm itself."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from chart import render, value_sets, values_schema

VALUE_SETS = value_sets.VALUE_SETS
SCHEMA_FILE = render.CHART_DIR / "values.schema.json"
VALUES_FILE = render.CHART_DIR / "values.yaml"


def test_schema_file_is_what_the_generator_produces() -> None:
    assert SCHEMA_FILE.read_text() == values_schema.render(), (
        "values.schema.json is stale: run .venv/bin/python tests/chart/values_schema.py"
    )


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        if node.get("type") in ("object", ["object", "null"]) and "properties" in node:
            out.append((path, node))
        for key, value in node.items():
            out.extend(_objects(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_objects(value, f"{path}/{index}"))
    return out


def test_every_object_in_the_schema_is_closed() -> None:
    schema = values_schema.build()
    objects = _objects(schema)
    assert len(objects) > 40
    for path, node in objects:
        assert node.get("additionalProperties") is False, path


def _leaves(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of values.yaml keys, following the schema into jitgate's own objects only."""
    out = []
    for key, value in values.items():
        sub = schema["properties"].get(key)
        assert sub is not None, f"{path}/{key} is in values.yaml but not in the schema"
        out.append(f"{path}/{key}")
        if isinstance(value, dict) and sub.get("properties") and "$ref" not in sub:
            out.extend(_leaves(value, sub, f"{path}/{key}"))
    return out


def _schema_keys(schema: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key, sub in schema.get("properties", {}).items():
        out.append(f"{path}/{key}")
        if sub.get("properties") and "$ref" not in sub:
            out.extend(_schema_keys(sub, f"{path}/{key}"))
    return out


def test_values_yaml_and_schema_describe_the_same_keys() -> None:
    schema = values_schema.build()
    defaults = yaml.safe_load(VALUES_FILE.read_text())
    in_values = set(_leaves(defaults, schema))
    in_schema = set(_schema_keys(schema)) - {"/global"}
    assert in_values == in_schema
    for path in in_schema:
        node = schema
        for part in path.strip("/").split("/"):
            node = node["properties"][part]
        assert node.get("description"), f"{path} has no description in the schema"


def test_every_value_is_documented_by_a_comment_in_values_yaml() -> None:
    """Each leaf value of values.yaml has a comment right above it or above an enclosing key."""
    lines = VALUES_FILE.read_text().splitlines()
    undocumented = []
    stack: list[tuple[int, bool]] = []  # (indent, has a comment) of the enclosing keys
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        commented = number > 0 and lines[number - 1].strip().startswith("#")
        following = next(
            (n.strip() for n in lines[number + 1 :] if n.strip() and not n.strip().startswith("#")),
            "",
        )
        is_leaf = not stripped.endswith(":") or following.startswith("- ")
        if is_leaf and not commented and not any(c for _, c in stack):
            undocumented.append(f"line {number + 1}: {stripped}")
        stack.append((indent, commented))
    assert not undocumented, undocumented


def expect_valid(values: dict[str, Any]) -> None:
    """Helm's own schema check accepts `values` (it raises HelmValuesError otherwise)."""
    render.chart().validate_schema(values)


def test_defaults_and_every_value_set_pass() -> None:
    expect_valid({})
    for values in VALUE_SETS.values():
        expect_valid(values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"surprise": True}, "additional properties 'surprise'"),
        ({"webhook": {"replica": 2}}, "/webhook"),
        ({"webhook": {"replicas": "2"}}, "/webhook/replicas"),
        ({"webhook": {"replicas": 0}}, "/webhook/replicas"),
        ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
        ({"webhook": {"failurePolicy": "fail"}}, "/webhook/failurePolicy"),
        ({"webhook": {"matchConditions": {"enabled": "yes"}}}, "/webhook/matchConditions/enabled"),
        ({"webhook": {"excludedNamespaces": "argocd"}}, "/webhook/excludedNamespaces"),
        ({"webhook": {"excludedNamespaces": ["Not_A_Namespace"]}}, "/webhook/excludedNamespaces/0"),
        ({"webhook": {"deleteResources": [{"resources": ["pods"]}]}}, "/webhook/deleteResources/0"),
        ({"webhook": {"exempt": {"user": ["x"]}}}, "/webhook/exempt"),
        ({"webhook": {"resources": {"limits": {"cpu": []}}}}, "/webhook/resources/limits/cpu"),
        ({"webhook": {"resources": {"limit": {}}}}, "/webhook/resources"),
        ({"webhook": {"tolerations": [{"key": "a", "effects": "NoSchedule"}]}}, "/tolerations/0"),
        ({"webhook": {"affinity": {"podAntiAffinity": {"bogus": 1}}}}, "/affinity/podAntiAffinity"),
        (
            {"webhook": {"protectedNamespaceSelector": {"matchLabel": {"a": "b"}}}},
            "/webhook/protectedNamespaceSelector",
        ),
        ({"webhook": {"podAnnotations": {"a": 1}}}, "/webhook/podAnnotations/a"),
        ({"webhook": {"extraEnv": [{"name": "A", "valu": "b"}]}}, "/webhook/extraEnv/0"),
        ({"webhook": {"podDisruptionBudget": {"minAvailable": "half"}}}, "/minAvailable"),
        ({"operator": {"retention": "7d"}}, "/operator/retention"),
        ({"operator": {"peering": {"enabled": 1}}}, "/operator/peering/enabled"),
        ({"operator": {"peering": {"name": "Jit Gate"}}}, "/operator/peering/name"),
        ({"audit": {"sink": "s3"}}, "/audit/sink"),
        ({"audit": {"sink": "postgres"}}, "/audit/postgres/existingSecret"),
        ({"audit": {"file": {"size": "lots"}}}, "/audit/file/size"),
        ({"audit": {"file": {"accessModes": []}}}, "/audit/file/accessModes"),
        ({"audit": {"hmac": {"key": "a/b"}}}, "/audit/hmac/key"),
        ({"tls": {"mode": "self-signed"}}, "/tls/mode"),
        ({"tls": {"helm": {"validityDays": "365"}}}, "/tls/helm/validityDays"),
        ({"tls": {"certManager": {"issuer": "x"}}}, "/tls/certManager"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"imagePullSecrets": ["regcred"]}, "/imagePullSecrets/0"),
        ({"networkPolicy": {"egress": {"rules": [{"to": [{"cidr": "0.0.0.0/0"}]}]}}}, "/to/0"),
        ({"defaultPolicy": {"actions": ["exec", "ssh"]}}, "/defaultPolicy/actions/1"),
        ({"defaultPolicy": {"actions": []}}, "/defaultPolicy/actions"),
        ({"defaultPolicy": {"requiredApprovals": 0}}, "/defaultPolicy/requiredApprovals"),
        ({"defaultPolicy": {"maxDuration": "1 hour"}}, "/defaultPolicy/maxDuration"),
        ({"defaultPolicy": {"approvers": {"groups": "ops"}}}, "/defaultPolicy/approvers/groups"),
        ({"defaultPolicy": {"breakGlass": {"user": []}}}, "/defaultPolicy/breakGlass"),
        ({"commonLabels": {"team": 7}}, "/commonLabels/team"),
    ],
)
def test_schema_rejects(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render.chart().validate_schema(values)
    assert where in str(caught.value)
    with pytest.raises(helm.HelmValuesError):  # `helm install` would refuse too
        render.render_templates(values, fresh=True)
