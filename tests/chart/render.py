"""Render charts/jitgate with real Helm (helm-python-sdk) into Kubernetes objects.

Reusable by any test tier (pytest puts tests/ on sys.path):

    from chart import render

    objects = render.render_chart({"webhook": {"replicas": 1}})          # list[dict]
    vwc = render.find(objects, "ValidatingWebhookConfiguration", "jitgate")

Rendering is offline: `lookup` finds nothing, so every render generates a new CA, serving
certificate and HMAC key (a real install reuses the existing Secrets; see the chart README).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "jitgate"
RELEASE_NAME = "jitgate"
NAMESPACE = "jitgate-system"

# Names of the objects a default render creates (release "jitgate"; a release whose name does
# not contain "jitgate" gets the prefix "<release>-jitgate" instead of "jitgate").
WEBHOOK_NAME = "jitgate-webhook"  # StatefulSet, Service, ServiceAccount, ClusterRole(Binding)
OPERATOR_NAME = "jitgate-operator"  # StatefulSet, headless Service, ServiceAccount, ClusterRole
WEBHOOK_CONFIGURATION_NAME = "jitgate"  # Validating- and MutatingWebhookConfiguration
TLS_SECRET_NAME = "jitgate-webhook-tls"
AUDIT_KEY_SECRET_NAME = "jitgate-audit-key"

_chart: helm.Chart | None = None
_rendered: dict[str, dict[str, str]] = {}


def chart() -> helm.Chart:
    """The chart, loaded once per process."""
    global _chart
    if _chart is None:
        _chart = helm.Chart.load(CHART_DIR)
    return _chart


def render_templates(
    values: Mapping[str, Any] | None = None,
    *,
    name: str = RELEASE_NAME,
    namespace: str = NAMESPACE,
    is_upgrade: bool = False,
    fresh: bool = False,
) -> dict[str, str]:
    """`{template path: rendered text}` as Helm renders it (NOTES.txt included).

    Renders are memoized per arguments (a render generates keys and certificates), so the
    same arguments give the same certificates and keys; `fresh=True` renders anew.
    """
    key = json.dumps([values or {}, name, namespace, is_upgrade], sort_keys=True)
    if fresh or key not in _rendered:
        _rendered[key] = chart().render(
            json.loads(json.dumps(values or {})),
            name=name,
            namespace=namespace,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
    return dict(_rendered[key])


def render_chart(
    values: Mapping[str, Any] | None = None,
    *,
    name: str = RELEASE_NAME,
    namespace: str = NAMESPACE,
    is_upgrade: bool = False,
    include_hooks: bool = True,
    fresh: bool = False,
) -> list[dict[str, Any]]:
    """Every object the chart's templates render, empty documents dropped, NOTES.txt skipped.

    The CRDs of the chart's crds/ directory are not rendered by Helm: see `crd_objects`.
    With `include_hooks=False` the hook objects (the ClusterKopfPeering) are left out.
    """
    objects: list[dict[str, Any]] = []
    rendered = render_templates(
        values, name=name, namespace=namespace, is_upgrade=is_upgrade, fresh=fresh
    )
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for document in yaml.safe_load_all(text):
            if not document:
                continue
            if not include_hooks and is_hook(document):
                continue
            objects.append(document)
    return objects


def notes(values: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
    """The rendered NOTES.txt."""
    rendered = render_templates(values, **kwargs)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def crd_objects() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions shipped in the chart's crds/ directory."""
    out = []
    for entry in chart().crds:
        for document in yaml.safe_load_all(entry.get("data", "")):
            if document:
                out.append(document)
    return out


def is_hook(obj: Mapping[str, Any]) -> bool:
    return "helm.sh/hook" in (obj.get("metadata", {}).get("annotations") or {})


def by_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(o) for o in objects if o.get("kind") == kind]


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` called `name`; KeyError when there is none."""
    for obj in objects:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return dict(obj)
    raise KeyError(f"no {kind} named {name!r} among the rendered objects")


def webhook_configurations_for_url(
    url: str,
    ca_bundle_pem: bytes,
    values: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The chart's Validating- and MutatingWebhookConfiguration, pointed at `url` instead of
    the in-cluster Service: each webhook gets `clientConfig: {url: <url><path>, caBundle}`,
    e.g. `url="https://127.0.0.1:8443"` for a webhook run as a local process. Everything else
    (rules, selectors, matchConditions, failure policy) is as rendered."""
    ca = base64.b64encode(ca_bundle_pem).decode()
    out = []
    for obj in render_chart(values, **kwargs):
        if obj["kind"] not in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            continue
        obj["metadata"].pop("annotations", None)  # no cert-manager injection outside a cluster
        for hook in obj["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": url.rstrip("/") + path, "caBundle": ca}
        out.append(obj)
    return out


def dump(objects: Iterable[Mapping[str, Any]]) -> str:
    """The objects as one multi-document YAML stream (e.g. for `kubectl apply -f -`)."""
    return yaml.safe_dump_all([json.loads(json.dumps(o)) for o in objects], sort_keys=False)


def lint(values: Mapping[str, Any] | None = None, kube_version: str = "v1.33.0") -> dict[str, Any]:
    """`helm lint --strict` findings as data (severity 3 is an error)."""
    return helm.lint(CHART_DIR, dict(values or {}), strict=True, kube_version=kube_version)
