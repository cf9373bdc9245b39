"""The kinds an emulator serves: Kubernetes' own, kopf's peerings, CRDs, and jitgate's CRDs.

jitgate's kinds are served from the CRDs :mod:`jitgate.core.crds` generates from the models,
the same ones ``crds/`` and the chart hold, so short names, printer columns and scope match a
real cluster.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jitgate.core.crds import KINDS, custom_resource_definition

if TYPE_CHECKING:
    from jitgate.devtools.emulator.store import KubeEmulator

# A CRD given as a dict, a YAML file, or a directory of YAML files.
CrdSource = str | os.PathLike[str] | Mapping[str, Any]

ALL_VERBS = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)
STANDARD_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@functools.cache
def bundled_resources() -> str:
    """kmock's discovery data of Kubernetes' own kinds (its load_bundled(), without the
    DeprecationWarning, and decompressed only once)."""
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    return gzip.decompress(data).decode()


def crd_kinds(crd: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("group/version/plural", register() keyword arguments)`` for each served version."""
    spec = crd["spec"]
    names = spec["names"]
    for version in spec.get("versions", []):
        if version.get("served", True):
            yield (
                f"{spec['group']}/{version['name']}/{names['plural']}",
                dict(
                    kind=names["kind"],
                    singular=names.get("singular"),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    shortnames=names.get("shortNames", ()),
                    categories=names.get("categories", ()),
                    subresources=version.get("subresources") or {},
                    columns=version.get("additionalPrinterColumns") or (),
                ),
            )


def crd_documents(sources: Iterable[CrdSource]) -> list[Mapping[str, Any]]:
    """The CustomResourceDefinitions in dicts, YAML files and directories of YAML files."""
    docs: list[Mapping[str, Any]] = []
    for source in sources:
        if isinstance(source, Mapping):
            docs.append(source)
            continue
        path = Path(source)
        for file in sorted(path.glob("*.y*ml")) if path.is_dir() else [path]:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 10x faster
            docs.extend(d for d in yaml.load_all(file.read_text(), Loader=loader) if d)
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


def jitgate_crds() -> list[dict[str, Any]]:
    """AccessPolicy, AccessRequest and Grant: the CRDs generated from jitgate's models."""
    return [custom_resource_definition(kind) for kind in KINDS]


def register_jitgate_kinds(emulator: KubeEmulator, crds: Iterable[CrdSource] = ()) -> None:
    """Serve AccessPolicy, AccessRequest and Grant from CRD manifests if given (their files,
    directories or dicts), else from the generated CRDs; the CRD objects are created too."""
    emulator.load_crds(*(list(crds) or jitgate_crds()))
