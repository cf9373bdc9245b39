"""The CRDs and the pydantic models are one API: generated from one source, agreeing on
every example and every invalid object."""

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from jitgate.core.api import AccessPolicy, AccessRequest, Grant
from jitgate.core.crds import KINDS, render_all

REPO = Path(__file__).resolve().parents[2]
MODELS: dict[str, type[BaseModel]] = {
    "AccessPolicy": AccessPolicy,
    "AccessRequest": AccessRequest,
    "Grant": Grant,
}


def crd_schema(kind: str) -> dict[str, Any]:
    for text in render_all().values():
        crd = yaml.safe_load(text)
        if crd["spec"]["names"]["kind"] == kind:
            schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no CRD for {kind}")


def example_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every jitgate object in examples/, the README and YAML test fixtures."""
    sources = [*sorted((REPO / "examples").glob("*.yaml"))]
    # A chart's templates (the previous release's chart fixture) are YAML only once rendered.
    sources += sorted(p for p in (REPO / "tests").rglob("*.yaml") if "templates" not in p.parts)
    for path in sources:
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") in MODELS:
                yield f"{path.relative_to(REPO)}:{document['metadata']['name']}", document
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL):
        for document in yaml.safe_load_all(block):
            if isinstance(document, dict) and document.get("kind") in MODELS:
                yield f"README.md:{document['metadata']['name']}", document


EXAMPLES = list(example_objects())


def test_crds_directory_is_generated_from_the_models() -> None:
    expected = render_all()
    actual = {path.name: path.read_text() for path in (REPO / "crds").glob("*.yaml")}
    assert actual == expected, "crds/ is stale: run `make crds`"


def test_chart_ships_the_same_crds() -> None:
    chart = {p.name: p.read_text() for p in (REPO / "charts/jitgate/crds").glob("*.yaml")}
    assert chart == render_all(), "charts/jitgate/crds is stale: run `make crds`"


@pytest.mark.parametrize("version", ["1.29", "1.33", "1.37"])
@pytest.mark.parametrize("kind", [kind.kind for kind in KINDS])
def test_crds_are_valid_kubernetes_objects(kind: str, version: str) -> None:
    crds = [yaml.safe_load(text) for text in render_all().values()]
    of_kind = [crd for crd in crds if crd["spec"]["names"]["kind"] == kind]
    assert len(of_kind) == 1
    kubernetes_validate.validate(of_kind[0], version, strict=True)  # raises when invalid


def _undescribed(schema: dict[str, Any], path: str) -> Iterator[str]:
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            yield f"{path}.{name}"
        yield from _undescribed(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _undescribed(schema["items"], f"{path}[]")


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_field_is_described_for_kubectl_explain(kind: str) -> None:
    # metadata's description comes from the API server: a CRD may not give one.
    assert list(_undescribed(crd_schema(kind), kind)) == [f"{kind}.metadata"]


def test_crds_carry_the_api_server_rules() -> None:
    request = crd_schema("AccessRequest")
    spec = request["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable"} in spec[
        "x-kubernetes-validations"
    ]
    assert spec["properties"]["actions"]["items"]["properties"]["verb"]["enum"] == [
        "exec",
        "attach",
        "portforward",
        "delete",
        "scale",
        "unprotect",
    ]
    duration = spec["properties"]["duration"]
    assert duration["x-kubernetes-validations"][0]["rule"] == (
        "duration(self) > duration('0s') && duration(self) <= duration('87600h')"
    )
    assert "pattern" in duration
    assert spec["properties"]["reason"]["minLength"] == 1
    grant_spec = crd_schema("Grant")["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable"} in grant_spec[
        "x-kubernetes-validations"
    ]
    policy = crd_schema("AccessPolicy")["properties"]["spec"]
    assert policy["properties"]["requiredApprovals"]["minimum"] == 1


def test_printer_columns_and_short_names() -> None:
    for text in render_all().values():
        crd = yaml.safe_load(text)
        names = crd["spec"]["names"]
        assert names["shortNames"]
        columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
        if names["kind"] in ("AccessRequest", "Grant"):
            assert {"Phase", "Actions", "Expires", "Age"} <= set(columns)
        if names["kind"] == "AccessRequest":
            assert "Requester" in columns


def test_there_are_examples_of_every_kind() -> None:
    assert {document["kind"] for _, document in EXAMPLES} == set(MODELS)


@pytest.mark.parametrize(("where", "document"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_every_example_validates_against_model_and_crd(
    where: str, document: dict[str, Any]
) -> None:
    MODELS[document["kind"]].model_validate(document)  # raises when invalid
    schema = crd_schema(document["kind"])
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    assert [error.message for error in validator(schema).iter_errors(document)] == []


def _mutate(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return changed


_DELETE = object()
REQUEST = yaml.safe_load((REPO / "examples/accessrequest-exec.yaml").read_text())
POLICY = yaml.safe_load((REPO / "examples/accesspolicy-production.yaml").read_text())
GRANT = yaml.safe_load((REPO / "examples/grant.yaml").read_text())

INVALID = [
    ("unknown verb", REQUEST, "spec.actions.0.verb", "shell"),
    ("empty reason", REQUEST, "spec.reason", ""),
    ("blank reason", REQUEST, "spec.reason", "   "),
    ("missing reason", REQUEST, "spec.reason", _DELETE),
    ("garbage duration", REQUEST, "spec.duration", "fifteen minutes"),
    ("day unit", REQUEST, "spec.duration", "1d"),
    ("no actions", REQUEST, "spec.actions", []),
    ("unknown phase", {**REQUEST, "status": {"phase": "Granted"}}, "status.phase", "Granted"),
    ("zero approvals", POLICY, "spec.requiredApprovals", 0),
    ("unknown action", POLICY, "spec.actions.0", "proxy"),
    (
        "bad selector operator",
        POLICY,
        "spec.namespaces.selector",
        {"matchExpressions": [{"key": "a", "operator": "Like"}]},
    ),
    ("unknown session recording", POLICY, "spec.sessions", {"recording": "Always"}),
    ("garbage idle timeout", POLICY, "spec.sessions", {"idleTimeout": "soon"}),
    ("grant without user", GRANT, "spec.user", _DELETE),
    ("bad decision", GRANT, "spec.approvals.0.decision", "Maybe"),
]


@pytest.mark.parametrize(
    ("what", "document", "path", "value"), INVALID, ids=[case[0] for case in INVALID]
)
def test_invalid_objects_are_rejected_by_model_and_crd(
    what: str, document: dict[str, Any], path: str, value: Any
) -> None:
    bad = _mutate(document, path, value)
    with pytest.raises(ValidationError):
        MODELS[bad["kind"]].model_validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, crd_schema(bad["kind"]), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("what", "document", "path", "value"),
    [
        ("zero duration", REQUEST, "spec.duration", "0s"),
        ("scale of pods", REQUEST, "spec.actions.0", {"verb": "scale", "resource": "pods"}),
        (
            "command on delete",
            REQUEST,
            "spec.actions.0",
            {"verb": "delete", "resource": "pods", "command": ["x"]},
        ),
        ("grant bad time", GRANT, "spec.expiresAt", "tomorrow"),
        ("window reversed", GRANT, "spec.notBefore", "2026-11-21T11:00:00Z"),
    ],
)
def test_rules_only_cel_can_express_are_in_the_model_too(
    what: str, document: dict[str, Any], path: str, value: Any
) -> None:
    """The API server enforces these with CEL (tested in the real API server tier)."""
    with pytest.raises(ValidationError):
        MODELS[document["kind"]].model_validate(_mutate(document, path, value))
