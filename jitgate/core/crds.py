"""CustomResourceDefinitions generated from the pydantic models in `jitgate.core.api`.

Pydantic emits JSON Schema with `$ref`, `anyOf` for optionals and `const`; Kubernetes wants
a structural schema, so this module inlines references, unwraps optionals and drops the
keywords the API server rejects. `jitgate crds` prints the result and a test keeps `crds/`
identical to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from jitgate.core.api import GROUP, VERSION, AccessPolicy, AccessRequest, Grant

# Keywords pydantic emits that are either noise or not allowed in a structural schema.
_DROPPED = frozenset({"title", "const", "$defs"})
_TOP_LEVEL_DESCRIPTIONS = {
    "apiVersion": "The versioned schema of this object: jitgate.dev/v1alpha1.",
    "kind": "The REST resource this object represents.",
}


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    printer_columns: tuple[dict[str, str], ...]

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


def _column(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

KINDS: tuple[Kind, ...] = (
    Kind(
        model=AccessPolicy,
        plural="accesspolicies",
        singular="accesspolicy",
        short_names=("jitpolicy",),
        namespaced=False,
        printer_columns=(
            _column("Enforced", '.status.conditions[?(@.type=="Enforced")].status'),
            _column("Actions", ".spec.actions"),
            _column("Approvals", ".spec.requiredApprovals", "integer"),
            _column("Max-Duration", ".spec.maxDuration"),
            _column("Why", '.status.conditions[?(@.type=="Enforced")].message', priority=1),
            _AGE,
        ),
    ),
    Kind(
        model=AccessRequest,
        plural="accessrequests",
        singular="accessrequest",
        short_names=("ar", "jitreq"),
        namespaced=True,
        printer_columns=(
            _column("Phase", ".status.phase"),
            _column("Requester", ".spec.requester.user"),
            _column("Actions", ".status.actions"),
            # A string, not a date: kubectl prints a future date as <invalid>.
            _column("Expires", ".status.grant.expiresAt"),
            _column("Policies", ".status.policies[*].name", priority=1),
            _column("Reason", ".spec.reason", priority=1),
            _AGE,
        ),
    ),
    Kind(
        model=Grant,
        plural="grants",
        singular="grant",
        short_names=("jitgrant",),
        namespaced=True,
        printer_columns=(
            _column("Phase", ".status.phase"),
            _column("User", ".spec.user"),
            _column("Actions", ".status.actions"),
            _column("Expires", ".spec.expiresAt"),
            _column("Request", ".spec.accessRequest.name", priority=1),
            _AGE,
        ),
    ),
)


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # keep the field's own description over the model's
    if "anyOf" in node:
        branches = [branch for branch in node.pop("anyOf") if branch.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf {branches!r} in a structural schema")
        node = {**_structural(branches[0], defs), **node}
        if node.get("default", ...) is None:
            del node["default"]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    return {
        key: _structural(value, defs)
        if key not in ("properties", "default", "enum", "x-kubernetes-validations")
        else (
            {name: _structural(prop, defs) for name, prop in value.items()}
            if key == "properties"
            else value
        )
        for key, value in node.items()
        if key not in _DROPPED
    }


def _schema(kind: Kind) -> dict[str, Any]:
    raw = kind.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties: dict[str, Any] = {
        name: {"type": "string", "description": text}
        for name, text in _TOP_LEVEL_DESCRIPTIONS.items()
    }
    # The API server owns metadata's schema: a CRD may say nothing but its type here (even a
    # description is refused: "must not specify anything other than name and generateName").
    properties["metadata"] = {"type": "object"}
    for part in ("spec", "status"):
        if part in raw["properties"]:
            properties[part] = _structural(raw["properties"][part], defs)
            properties[part].pop("default", None)
    return {
        "type": "object",
        "description": raw.get("description", ""),
        "required": ["spec"],
        "properties": properties,
    }


def custom_resource_definition(kind: Kind) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": _schema(kind)},
        "additionalPrinterColumns": list(kind.printer_columns),
        # Only the operator writes status; the status subresource keeps it out of spec writes.
        "subresources": {"status": {}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "jitgate"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["jitgate"],
            },
            "versions": [version],
        },
    }


def render_yaml(kind: Kind) -> str:
    header = "# Generated by `jitgate crds` from jitgate/core/api.py; do not edit by hand.\n"
    document = yaml.safe_dump(
        custom_resource_definition(kind), sort_keys=False, width=100, allow_unicode=True
    )
    return header + document


def render_all() -> dict[str, str]:
    """File name to YAML text, for every jitgate CRD."""
    return {kind.file_name: render_yaml(kind) for kind in KINDS}
