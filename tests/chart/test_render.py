"""The chart renders with real Helm, lints clean, and every object it renders is valid.

Built-in kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields fail) for the oldest supported, a middle and the newest Kubernetes.
jitgate's own kinds are validated against the openAPIV3Schema of their CRD, with every object
closed (the API server would drop unknown fields silently, which is worse than failing);
kopf's ClusterKopfPeering against the CRD the chart renders for it. cert-manager's kinds have
no schema here and are only counted.
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart import render, value_sets

VALUE_SETS = value_sets.VALUE_SETS
KUBERNETES_VERSIONS = value_sets.KUBERNETES_VERSIONS

CERT_MANAGER_KINDS = {"Certificate", "Issuer", "ClusterIssuer"}

# kubernetes-validate parses its multi-megabyte definitions file on every call; the files
# never change, so parse each once (this halves the run time of this module).
_utils: Any = sys.modules.get("kubernetes_validate.utils")
if _utils is not None and hasattr(_utils, "schema_contents"):
    _utils.schema_contents = functools.cache(_utils.schema_contents)
JITGATE_CRDS_DIR = render.REPO / "crds"


def _closed(schema: Any) -> Any:
    """A copy of an openAPIV3Schema where every object without explicit extra keys is closed."""
    if isinstance(schema, dict):
        out = {key: _closed(value) for key, value in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(value) for value in schema]
    return schema


def _crd_schemas(crds: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): closed openAPIV3Schema} for every served version of the CRDs."""
    out = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # apiVersion, kind and metadata are the API server's; a CRD need not describe them.
            properties = schema.setdefault("properties", {})
            properties["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
            properties["kind"] = {"const": spec["names"]["kind"]}
            properties["metadata"] = {"type": "object"}
            out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = _closed(schema)
    return out


def _jitgate_crds() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(JITGATE_CRDS_DIR.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def validate_objects(objects: list[dict[str, Any]], version: str) -> dict[str, int]:
    """Validate every object; return how many were checked per method."""
    custom = _crd_schemas(_jitgate_crds())
    custom |= _crd_schemas([o for o in objects if o["kind"] == "CustomResourceDefinition"])
    counts = {"kubernetes": 0, "crd": 0, "skipped": 0}
    for obj in objects:
        what = f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version})"
        key = (obj["apiVersion"], obj["kind"])
        if obj["kind"] in CERT_MANAGER_KINDS and obj["apiVersion"].startswith("cert-manager.io/"):
            counts["skipped"] += 1
            continue
        if key in custom:
            try:
                jsonschema.validate(obj, custom[key])
            except jsonschema.ValidationError as error:
                pytest.fail(f"{what}: {error.message} at {list(error.absolute_path)}")
            counts["crd"] += 1
            continue
        if obj["apiVersion"].startswith("jitgate.dev/"):
            pytest.skip(f"no CRD for {obj['kind']} in crds/ yet")
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{what}: {error.message} at {list(error.absolute_path)}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{what}: no schema for this kind")
        counts["kubernetes"] += 1
    return counts


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid(value_set: str, version: str) -> None:
    objects = render.render_chart(VALUE_SETS[value_set])
    counts = validate_objects(objects, version)
    assert counts["kubernetes"] >= 12
    assert counts["kubernetes"] + counts["crd"] + counts["skipped"] == len(objects)
    if VALUE_SETS[value_set].get("defaultPolicy", {}).get("enabled", True):
        assert counts["crd"] >= 1  # the default AccessPolicy, against its CRD


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict_finds_no_errors(value_set: str) -> None:
    versions = ("v1.29.0", "v1.33.0", "v1.37.0") if value_set == "default" else ("v1.33.0",)
    for kube_version in versions:
        report = render.lint(VALUE_SETS[value_set], kube_version=kube_version)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems, problems
        assert not report["errors"]


def test_lint_reports_values_the_schema_rejects() -> None:
    report = render.lint({"webhook": {"replicas": "two"}})
    errors = [m["error"] for m in report["messages"] if m["severity"] == 3]
    assert any("/webhook/replicas" in e for e in errors), report


def test_every_template_renders_something_for_some_value_set() -> None:
    produced: set[str] = set()
    for values in VALUE_SETS.values():
        for path, text in render.render_templates(values).items():
            if path.endswith("NOTES.txt") or any(d for d in yaml.safe_load_all(text) if d):
                produced.add(Path(path).name)
    templates = {p.name for p in (render.CHART_DIR / "templates").iterdir()}
    assert templates - produced == {"_helpers.tpl", "_admission.tpl"}


def test_object_names_are_unique_per_kind_and_namespace() -> None:
    for values in VALUE_SETS.values():
        seen = set()
        for obj in render.render_chart(values):
            key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            assert key not in seen, key
            seen.add(key)


def test_namespaced_objects_go_to_the_release_namespace() -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "CustomResourceDefinition",
        "ClusterKopfPeering",
        "AccessPolicy",
    }
    for obj in render.render_chart(VALUE_SETS["locked-down"], namespace="security"):
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], obj["kind"]
        else:
            assert obj["metadata"]["namespace"] == "security", obj["kind"]


def test_release_name_prefixes_every_name() -> None:
    objects = render.render_chart({}, name="prod")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("StatefulSet", "prod-jitgate-webhook") in names
    assert ("ValidatingWebhookConfiguration", "prod-jitgate") in names
    shared = {"CustomResourceDefinition", "ClusterKopfPeering", "AccessPolicy"}
    for kind, name in names:
        if kind not in shared:
            assert name.startswith("prod-jitgate"), (kind, name)


def test_operator_replicas_without_peering_fail_to_render() -> None:
    with pytest.raises(helm.HelmError, match="peering"):
        render.render_chart({"operator": {"replicas": 2, "peering": {"enabled": False}}})


def test_postgres_sink_without_a_secret_is_rejected() -> None:
    with pytest.raises(helm.HelmError, match="existingSecret"):
        render.render_chart({"audit": {"sink": "postgres"}})


def test_image_defaults_to_the_app_version_which_is_the_package_version() -> None:
    chart_meta = yaml.safe_load((render.CHART_DIR / "Chart.yaml").read_text())
    pyproject = (render.REPO / "pyproject.toml").read_text()
    assert f'version = "{chart_meta["appVersion"]}"' in pyproject
    for sts in render.by_kind(render.render_chart({}), "StatefulSet"):
        image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"ghcr.io/jitgate/jitgate:{chart_meta['appVersion']}"
    assert chart_meta["kubeVersion"] == ">=1.29.0-0"


def test_notes_give_the_next_steps() -> None:
    text = render.notes({})
    assert "kubectl label namespace <namespace> jitgate.dev/protected=true" in text
    assert "rollout status statefulset/jitgate-webhook" in text
    assert "jitgate audit verify" in text
    assert "WARNING" not in text
    assert "WARNING: webhook.replicas is 1" in render.notes(VALUE_SETS["ha-off"])
