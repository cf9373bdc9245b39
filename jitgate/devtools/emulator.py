"""A Kubernetes API emulator for tests and for ``jitgate demo`` (no cluster needed).

It is kmock 0.8's ``KubernetesEmulator`` (kmock is pinned: this module touches its internals)
with the storage semantics replaced by ones close enough to a real API server for kopf, the
``kubernetes`` Python client and the real ``kubectl`` binary:

* metadata stamping: ``uid``, ``creationTimestamp``, ``generation`` (bumped on spec changes),
  namespace from the URL, names from ``generateName``, and one global ``resourceVersion``
  counter bumped by every write (no-op patches write nothing, as in Kubernetes);
* ``201`` on create, ``409 AlreadyExists`` / ``409 Conflict`` (stale ``resourceVersion``),
  ``404 NotFound`` and ``422 Invalid`` (failed JSON-patch ``test``) with ``Status`` bodies;
* PATCH (json, merge, strategic-as-merge), PUT, DELETE, delete-collection, ``dryRun``,
  label and field selectors, ``/api/v1/namespaces[/NAME]``, the ``scale`` subresource;
* status isolation for kinds with a ``status`` subresource: ``/status`` writes change only
  ``status``, main-resource writes never change it, CREATE drops it;
* finalizers: DELETE sets ``deletionTimestamp`` and the object stays until the last
  finalizer is removed; ownerReference garbage collection (background and ``Orphan``);
  deleting a Namespace deletes what is in it;
* watches: served as ``application/json``, ``?resourceVersion=`` honoured (only later
  events; a synthetic ADDED replay only without one), ``sendInitialEvents`` with the
  closing BOOKMARK, ``timeoutSeconds``, atomic snapshot+subscription, and a bounded event
  history: a watch from a ``resourceVersion`` older than it gets an ``ERROR`` event with
  ``410 Gone`` (force it with :meth:`KubeEmulator.expire_history`, and drop every open
  watch with :meth:`KubeEmulator.close_watches`);
* ``kubectl get`` tables (``as=Table``), with a CRD's ``additionalPrinterColumns``;
* creating a CustomResourceDefinition through the API serves its kind (``kubectl apply -f
  crds/`` works), and :meth:`KubeEmulator.load_crds` does the same from YAML files.

Not emulated: authentication and authorization (the bearer token is taken as the user
name, see :func:`request_user`), admission webhooks, schema validation and defaulting,
OpenAPI (so ``kubectl apply``/``create -f`` need ``--validate=false``), protobuf (so
kubectl's typed generators such as ``kubectl create namespace X`` get 415: apply a manifest
instead), server-side apply, strategic-merge list semantics (applied as a JSON merge
patch), foreground deletion (treated as background), deleting a CRD (its kind stays
served), namespace existence checks, ``exec``/``attach``/``port-forward``/``log`` streams,
pagination (``limit`` is ignored; lists are complete). Controllers do not run: a
Deployment never gets Pods, a Pod never gets a phase unless a test patches its status.

Serving it::

    async with run_emulator() as handle:          # handle.url, handle.emulator
        handle.write_kubeconfig(path)             # for kubectl and kubernetes.config
        ...

or as a process: ``python -m jitgate.devtools.emulator --port 0 --kubeconfig kc.yaml`` prints
the URL on stdout once it is ready and serves until SIGTERM/SIGINT.

Running kopf against it in a test (in the test's event loop; what works best)::

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return handle.connection_info()

    @kopf.on.create("jitgate.dev", "v1alpha1", "accessrequests", registry=registry)
    def created(patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Pending"

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.background.cancellation_polling = 0.1
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(registry=registry, settings=settings,
        standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready))
    await ready.wait()
    ...
    stop.set(); await task

``kopf.operator`` as a task beats ``KopfRunner`` here: ``KopfRunner`` runs kopf in its own
thread and loop, loads handlers through the CLI, and its ``__exit__`` joins the thread from
inside the test loop that serves the emulator. ``kopf.operator`` treats every task created
after its start as its own and waits up to 5 s for them at exit; the server side of this
emulator is built so that nothing of it lingers (watch handlers are cancelled when the
client disconnects, and ``keep_alive=False`` in tests closes each non-watch connection), so
``stop.set(); await task`` returns at once (measured: 5 s with keep-alive connections from
a ``kubernetes`` client, 0.01 s without). A create -> on.create status -> timer deletes after
a 1 s TTL (0.5 s interval) round takes ~1.1 s. ``tests/conftest.py`` wraps this recipe as
the ``kopf_runner`` fixture.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import functools
import gzip
import importlib.resources
import json
import os
import random
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml
from kmock._internal import apps as _kmock_apps
from kmock._internal import parsing as _kmock_parsing
from kmock._internal.rendering import Response

if TYPE_CHECKING:
    import kopf
    import kubernetes.client

__all__ = [
    "JITGATE_GROUP",
    "JITGATE_VERSION",
    "ApiError",
    "EmulatorHandle",
    "KubeEmulator",
    "jitgate_resources",
    "main",
    "register_jitgate_kinds",
    "request_user",
    "run_emulator",
    "serve_forever",
]

JITGATE_GROUP = "jitgate.dev"
JITGATE_VERSION = "v1alpha1"
ALL_VERBS = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as in Kubernetes' generateName suffixes
_CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_NAMESPACES = kmock.resource("", "v1", "namespaces")

Obj = dict[str, Any]
_T = TypeVar("_T")
ObjectKey = tuple[kmock.resource, str | None, str]


# kmock 0.8 mis-parses /api/v1/namespaces (500) and /api/v1/namespaces/NAME (as a namespace
# with no resource). Namespaces are the only core objects whose URL looks like that.
def _parse_path(path: str) -> Any:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in {"status", "finalize"})
    ):
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 else None
        return _kmock_parsing.ParsedPath("", "v1", "namespaces", None, name, sub)
    return _ORIGINAL_PARSE_PATH(path)


_ORIGINAL_PARSE_PATH = getattr(_kmock_parsing.parse_path, "original", _kmock_parsing.parse_path)
_parse_path.original = _ORIGINAL_PARSE_PATH  # type: ignore[attr-defined]  # no double wrap
_kmock_parsing.parse_path = _parse_path


class ApiError(Exception):
    """A Kubernetes API error; served as a ``Status`` object with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    resource: kmock.resource
    type: str
    object: Obj
    old: Obj | None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge patch; ``strategic`` only drops the ``$directives``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value, strategic=strategic)
    return result


def _selector(expr: str | None, *, fields: bool) -> Callable[[Obj], bool]:
    """A predicate for a label selector or (``fields=True``) a field selector."""
    checks: list[Callable[[Obj], bool]] = []
    for term in re.split(r",(?![^(]*\))", expr or ""):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s*\(([^)]*)\)", term):
            key, op, vals = m[1], m[2], {v.strip() for v in m[3].split(",")}
        elif m := re.fullmatch(r"([^!=]+?)\s*(==|!=|=)\s*(.*)", term):
            key, op, vals = m[1], m[2], {m[3].strip()}
        else:
            key, op, vals = term.lstrip("!"), "absent" if term.startswith("!") else "exists", set()

        def get(obj: Obj, key: str = key) -> str | None:
            if not fields:
                return obj.get("metadata", {}).get("labels", {}).get(key)  # type: ignore[no-any-return]
            value: Any = obj
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            return None if value is None else str(value)

        def check(obj: Obj, op: str = op, vals: set[str] = vals, get: Any = get) -> bool:
            value = get(obj)
            if op in {"=", "==", "in"}:
                return value in vals or (fields and value is None and "" in vals)
            if op in {"!=", "notin"}:
                return value not in vals
            return (value is not None) == (op == "exists")

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)


def _jsonpath(obj: Any, path: str) -> list[Any]:
    """The tiny JSONPath subset printer columns use: ``.a.b``, ``.a[*].b``, ``.a[0]``."""
    values = [obj]
    for token in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path.strip().strip("{}")):
        nxt: list[Any] = []
        for value in values:
            if token.startswith("["):
                if isinstance(value, list):
                    index = token[1:-1]
                    nxt.extend(value if index == "*" else value[int(index) : int(index) + 1])
            elif isinstance(value, Mapping) and token in value:
                nxt.append(value[token])
        values = nxt
    return values


def _human_age(timestamp: str) -> str:
    """Kubernetes' ``HumanDuration`` of the time since ``timestamp``."""
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    s = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 730 else f"{d // 365}y"


@functools.cache
def _bundled_resources() -> str:
    # kmock's load_bundled(), without its DeprecationWarning and decompressed only once.
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    return gzip.decompress(data).decode()


def request_user(request: kmock.Request) -> str | None:
    """Who sent a request: the impersonated user, else the bearer token (the user's name)."""
    headers = {key.lower(): value for key, value in request.headers.items()}
    if "impersonate-user" in headers:
        return headers["impersonate-user"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with (mostly) real API-server storage semantics.

    The objects live in kmock's ``emulator.objects`` (so kmock's assertions work on them).
    The synchronous ``create_object``, ``read_object``, ``list_objects``, ``patch_object``,
    ``replace_object`` and ``delete_object`` are what the HTTP API does; use them to seed and
    inspect state without a client (they raise :class:`ApiError`); call them from the event
    loop's thread only (from kopf, in async handlers). kmock reactions still take
    priority over this default behaviour, e.g. ``emulator["post", kmock.resource(...)] << 500``;
    a reaction that raises ``NotImplementedError`` falls through to the emulator.
    """

    history_limit: int = 10_000  # watch events kept for resuming watches; older ones: 410
    keep_alive: bool = True  # False: close every non-watch connection after its response
    # kmock matches each request against its whole request log, so an unbounded log makes
    # every request slower the longer the emulator runs; None keeps everything.
    request_log_limit: int | None = 200
    builtins: bool = True  # core kinds, kopf peering kinds, the four standard namespaces

    _rv: int = attrs.field(default=0, init=False)
    _events: collections.deque[_Event] = attrs.field(factory=collections.deque, init=False)
    _expired_rv: int = attrs.field(default=0, init=False)
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _watch_epoch: int = attrs.field(default=0, init=False)
    _columns: dict[kmock.resource, list[Obj]] = attrs.field(factory=dict, init=False)
    _reaction: Any = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        # The scaffold's discovery & 404 fallbacks, but not the emulator's storage fallbacks.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        is_object_url = lambda req: req.resource is not None and req.resource.plural is not None  # noqa: E731
        self._reaction = self.fallback[is_object_url] << self._serve
        if self.builtins:
            self.resources.load_data(_bundled_resources())
            # kopf's peering kinds (kopf.dev only: with zalando.org's too, kopf waits on both).
            self.register("kopf.dev/v1/clusterkopfpeerings", kind="ClusterKopfPeering")
            self.register("kopf.dev/v1/kopfpeerings", kind="KopfPeering", namespaced=True)
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create_object(_NAMESPACES, {"metadata": {"name": ns}})

    # ----------------------------------------------------------------- kinds
    def register(
        self,
        resource: str | kmock.resource,
        *,
        kind: str,
        namespaced: bool = False,
        singular: str | None = None,
        shortnames: Iterable[str] = (),
        categories: Iterable[str] = (),
        subresources: Iterable[str] = (),
        columns: Iterable[Mapping[str, Any]] = (),
    ) -> kmock.resource:
        """Serve a kind (``"group/version/plural"``) in discovery and the object API."""
        res = kmock.resource(resource) if isinstance(resource, str) else resource
        self.resources[res] = kmock.ResourceInfo(
            kind=kind,
            singular=singular or kind.lower(),
            namespaced=namespaced,
            verbs=ALL_VERBS,
            shortnames=shortnames,
            categories=categories,
            subresources=subresources,
        )
        self._columns[res] = [dict(column) for column in columns]
        return res

    def register_crd(self, crd: Mapping[str, Any]) -> list[kmock.resource]:
        """Serve every served version of a CustomResourceDefinition (not stored as an object)."""
        spec, result = crd["spec"], []
        names = spec["names"]
        for version in spec.get("versions", []):
            if version.get("served", True):
                res = self.register(
                    f"{spec['group']}/{version['name']}/{names['plural']}",
                    kind=names["kind"],
                    singular=names.get("singular"),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    shortnames=names.get("shortNames", ()),
                    categories=names.get("categories", ()),
                    subresources=version.get("subresources") or {},
                    columns=version.get("additionalPrinterColumns") or (),
                )
                result.append(res)
        return result

    def load_crds(self, *sources: str | os.PathLike[str] | Mapping[str, Any]) -> list[Obj]:
        """Create CRDs (served at once) from dicts, YAML files or directories of YAML files."""
        docs: list[Mapping[str, Any]] = []
        for source in sources:
            if isinstance(source, Mapping):
                docs.append(source)
                continue
            path = Path(source)
            for file in sorted(path.glob("*.y*ml")) if path.is_dir() else [path]:
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 10x faster
                docs.extend(d for d in yaml.load_all(file.read_text(), Loader=loader) if d)
        result = []
        for crd in (d for d in docs if d.get("kind") == "CustomResourceDefinition"):
            try:
                result.append(self.create_object(_CRDS, crd))
            except ApiError as e:
                if e.code != 409:
                    raise
                result.append(self.replace_object(_CRDS, None, crd["metadata"]["name"], crd))
        return result

    def resolve(self, resource: str | kmock.resource) -> kmock.resource:
        """The served resource meant by ``v1/pods``, ``pods``, ``ar``, ``grants.jitgate.dev``..."""
        res = kmock.resource(resource) if isinstance(resource, str) else resource
        if res in self.resources and None not in (res.group, res.version, res.plural):
            return res
        name = (res.plural or "").lower()
        for known in self.resources:
            info = self.resources[known]
            if res.group not in (None, known.group) or res.version not in (None, known.version):
                continue
            if name in {known.plural, info.singular, (info.kind or "").lower(), *info.shortnames}:
                return known
        raise ApiError(404, "NotFound", f"the server doesn't have a resource type {name!r}")

    def _lookup(self, resource: str | kmock.resource) -> tuple[kmock.resource, Any]:
        res = self.resolve(resource)
        return res, self.resources[res]

    # --------------------------------------------------------------- storage
    def _key(self, res: kmock.resource, info: Any, ns: str | None, name: str) -> ObjectKey:
        return (res, ns if info.namespaced is not False else None, name)

    def _get(self, key: ObjectKey) -> Obj | None:
        if key in self._objects and not self._objects[key].deleted:
            return self._objects[key].raw
        return None

    def _existing(self, res: kmock.resource, info: Any, ns: str | None, name: str) -> Obj:
        obj = self._get(self._key(res, info, ns, name))
        if obj is None:
            what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
            raise ApiError(
                404,
                "NotFound",
                f'{what} "{name}" not found',
                name=name,
                group=res.group,
                kind=res.plural,
            )
        return obj

    def _live(self, res: kmock.resource | None = None) -> list[tuple[ObjectKey, Obj]]:
        return sorted(
            ((key, obj.raw) for key, obj in self._objects.items() if not obj.deleted)
            if res is None
            else ((k, o.raw) for k, o in self._objects.items() if k[0] == res and not o.deleted),
            key=lambda item: (item[0][1] or "", item[0][2]),
        )

    def _commit(
        self, res: kmock.resource, key: ObjectKey, type_: str, obj: Obj, old: Obj | None
    ) -> Obj:
        """Store one write under a new resourceVersion and publish its watch event."""
        self._rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._rv)}}
        if type_ == "DELETED":
            self._objects[key].delete()
        elif key in self._objects:
            self._objects[key].history.append(obj)
        else:
            self._objects[key] = obj
        self._events.append(_Event(self._rv, res, type_, obj, old))
        while len(self._events) > self.history_limit:
            self._expired_rv = self._events.popleft().rv
        self._notify()
        if res == _CRDS and type_ != "DELETED":
            self.register_crd(obj)
        return copy.deepcopy(obj)  # callers may edit what they get; the store stays intact

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def create_object(
        self,
        resource: str | kmock.resource,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        res, info = self._lookup(resource)
        obj: Obj = copy.deepcopy(dict(body))
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        if namespace and meta.get("namespace") not in (None, namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match "
                "the namespace sent on the request",
            )
        if info.namespaced is not False:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        if not meta.get("name"):
            raise ApiError(
                422, "Invalid", "metadata.name: Required value: name or generateName is required"
            )
        key = self._key(res, info, meta.get("namespace"), meta["name"])
        if self._get(key) is not None:
            what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
            raise ApiError(
                409,
                "AlreadyExists",
                f'{what} "{meta["name"]}" already exists',
                name=meta["name"],
                group=res.group,
                kind=res.plural,
            )
        obj["apiVersion"] = f"{res.group}/{res.version}" if res.group else str(res.version)
        obj["kind"] = info.kind or str(res.plural).capitalize()
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if "status" in info.subresources:
            obj.pop("status", None)
        if res == _NAMESPACES:
            obj["status"] = {"phase": "Active"}
        obj = {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}
        if dry_run:
            return obj
        obj = self._commit(res, key, "ADDED", obj, None)
        if res == _CRDS:  # served at once, and the status says so
            status = {
                "acceptedNames": obj["spec"]["names"],
                "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": _now(), "reason": r}
                    for t, r in (
                        ("NamesAccepted", "NoConflicts"),
                        ("Established", "InitialNamesAccepted"),
                    )
                ],
            }
            obj = self._commit(res, key, "MODIFIED", {**obj, "status": status}, obj)
        return obj

    def read_object(self, resource: str | kmock.resource, namespace: str | None, name: str) -> Obj:
        res, info = self._lookup(resource)
        return copy.deepcopy(self._existing(res, info, namespace, name))

    def list_objects(
        self,
        resource: str | kmock.resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Obj:
        """A ``...List`` object, stamped with the current resourceVersion."""
        res, info = self._lookup(resource)
        labels, fields = (
            _selector(label_selector, fields=False),
            _selector(field_selector, fields=True),
        )
        items = [
            obj
            for (_, ns, _), obj in self._live(res)
            if namespace in (None, ns) and labels(obj) and fields(obj)
        ]
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else res.version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": copy.deepcopy(items),
        }

    def patch_object(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Patch: ``patch_type`` is ``json``, ``merge`` or ``strategic`` (applied as merge)."""
        res, info = self._lookup(resource)
        old = self._existing(res, info, namespace, name)
        base = self._scale(old) if subresource == "scale" else copy.deepcopy(old)
        if patch_type == "json":
            try:
                new = jsonpatch.apply_patch(base, patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                message = f"the server rejected our request due to an error in our request: {e}"
                raise ApiError(422, "Invalid", message) from e
        elif patch_type in {"merge", "strategic"}:
            new = _merge_patch(base, patch, strategic=patch_type == "strategic")
        else:
            raise ApiError(415, "UnsupportedMediaType", f"{patch_type} patches are not supported")
        return self._update(res, info, old, new, subresource, dry_run)

    def replace_object(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        res, info = self._lookup(resource)
        old = self._existing(res, info, namespace, name)
        if body.get("metadata", {}).get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        return self._update(res, info, old, copy.deepcopy(dict(body)), subresource, dry_run)

    def _update(
        self, res: kmock.resource, info: Any, old: Obj, new: Any, sub: str | None, dry_run: bool
    ) -> Obj:
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise ApiError(422, "Invalid", "the patched object is not a Kubernetes object")
        given_rv = new.get("metadata", {}).get("resourceVersion")
        if given_rv and given_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; "
                "please apply your changes to the latest version and try again",
            )
        if sub == "scale":
            replicas = new.get("spec", {}).get("replicas")
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["replicas"] = replicas
        elif sub == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
        elif sub is not None:
            raise ApiError(405, "MethodNotAllowed", f"the emulator does not serve {sub!r} writes")
        elif "status" in info.subresources:
            new["status"] = copy.deepcopy(old.get("status"))
        if new.get("status") is None:
            new.pop("status", None)
        immutable = (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        )
        meta = new["metadata"] = dict(new.get("metadata") or {})
        for field in immutable:
            meta.pop(field, None)
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if new != old:
            ignored = {"metadata", "status"} if "status" in info.subresources else {"metadata"}
            if {k: v for k, v in new.items() if k not in ignored} != {
                k: v for k, v in old.items() if k not in ignored
            }:
                meta["generation"] = old["metadata"].get("generation", 1) + 1
            if not dry_run:
                key = self._key(res, info, meta.get("namespace"), meta["name"])
                new = self._commit(res, key, "MODIFIED", new, old)
                if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                    self._remove(res, key, new)
        return self._scale(new) if sub == "scale" else new

    def delete_object(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete, or only mark for deletion while finalizers remain; cascades to dependents."""
        res, info = self._lookup(resource)
        old = self._existing(res, info, namespace, name)
        for field, value in (preconditions or {}).items():
            if value is not None and old["metadata"].get(field) != value:
                raise ApiError(409, "Conflict", f"Precondition failed: {field} mismatch")
        key = self._key(res, info, old["metadata"].get("namespace"), name)
        if dry_run or (
            old["metadata"].get("finalizers") and old["metadata"].get("deletionTimestamp")
        ):
            return copy.deepcopy(old)
        if not old["metadata"].get("finalizers"):
            return self._remove(res, key, old, orphan=propagation == "Orphan")
        meta = {**old["metadata"], "deletionTimestamp": _now(), "deletionGracePeriodSeconds": 0}
        return self._commit(res, key, "MODIFIED", {**old, "metadata": meta}, old)

    def _remove(self, res: kmock.resource, key: ObjectKey, obj: Obj, orphan: bool = False) -> Obj:
        final = self._commit(res, key, "DELETED", obj, obj)
        uid = obj["metadata"].get("uid")
        if res == _NAMESPACES:
            for (r, ns, name), _ in self._live():
                if ns == key[2] and self._get((r, ns, name)) is not None:
                    self.delete_object(r, ns, name)
        live_uids = {o["metadata"].get("uid") for _, o in self._live()}
        for (r, ns, name), dep in self._live():
            refs = dep["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs) or self._get((r, ns, name)) is None:
                continue
            if orphan:
                kept = [ref for ref in refs if ref.get("uid") != uid]
                self.patch_object(r, ns, name, {"metadata": {"ownerReferences": kept or None}})
            elif not any(ref.get("uid") in live_uids for ref in refs):
                self.delete_object(r, ns, name)
        return final

    @staticmethod
    def _scale(obj: Obj) -> Obj:
        selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: obj["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in obj["metadata"]
            },
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
            },
        }

    # --------------------------------------------------------------- watches
    async def wait_for(self, condition: Callable[[], _T], time_limit: float = 10) -> _T:
        """Wait until ``condition()`` is truthy (re-checked after every write); return it."""
        async with asyncio.timeout(time_limit):
            while not (result := condition()):
                await self._changed.wait()
        return result

    def expire_history(self) -> None:
        """Forget all past events: watches resuming from any version seen so far get 410 Gone."""
        self._events.clear()
        self._rv += 1  # even the latest version is too old now
        self._expired_rv = self._rv

    def close_watches(self) -> None:
        """End every open watch stream (clients reconnect with their last resourceVersion)."""
        self._watch_epoch += 1
        self._notify()

    async def _watch(
        self, res: kmock.resource, info: Any, ns: str | None, params: Mapping[str, str], table: bool
    ) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if there is nothing to stream yet
        labels = _selector(params.get("labelSelector"), fields=False)
        fields = _selector(params.get("fieldSelector"), fields=True)
        epoch, loop = self._watch_epoch, asyncio.get_running_loop()
        timeout = params.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None

        def render(type_: str, obj: Obj) -> Obj:
            return {"type": type_, "object": self._table(res, info, [obj]) if table else obj}

        def gone() -> Obj:
            error = ApiError(410, "Expired", "too old resource version").status()
            return {"type": "ERROR", "object": error}

        since = params.get("resourceVersion") or "0"
        if since == "0":  # "most recent" (or any) state: replay it as ADDED, then follow
            cursor, initial = self._rv, self.list_objects(res, ns, **self._selectors(params))
            for obj in initial["items"]:
                yield render("ADDED", obj)
            if params.get("sendInitialEvents") == "true":
                meta = {
                    "resourceVersion": str(cursor),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": info.kind,
                        "apiVersion": initial["apiVersion"],
                        "metadata": meta,
                    },
                }
        elif not since.isdigit() or int(since) < self._expired_rv:
            yield gone()
            return
        else:
            cursor = int(since)

        while epoch == self._watch_epoch:
            if cursor < self._expired_rv:
                yield gone()
                return
            pending: list[_Event] = []
            for event in reversed(self._events):
                if event.rv <= cursor:
                    break
                pending.append(event)
            changed = self._changed
            for event in reversed(pending):
                cursor = event.rv
                if event.resource != res or ns not in (
                    None,
                    event.object["metadata"].get("namespace"),
                ):
                    continue
                now = labels(event.object) and fields(event.object)
                before = event.old is not None and labels(event.old) and fields(event.old)
                if now:
                    type_ = "ADDED" if event.type == "MODIFIED" and not before else event.type
                    yield render(type_, event.object)
                elif before and event.type == "MODIFIED":  # it left the selection
                    yield render("DELETED", event.object)
            if not pending:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)

    @staticmethod
    def _selectors(params: Mapping[str, str]) -> dict[str, str | None]:
        return {
            "label_selector": params.get("labelSelector"),
            "field_selector": params.get("fieldSelector"),
        }

    def _table(self, res: kmock.resource, info: Any, objs: Sequence[Obj], rv: str = "") -> Obj:
        columns = self._columns.get(res) or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]
        definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0}]
        definitions += [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ]
        rows = []
        for obj in objs:
            cells: list[Any] = [obj["metadata"]["name"]]
            for column in columns:
                values = _jsonpath(obj, column["jsonPath"])
                if column.get("type") == "date" and values:
                    cells.append(_human_age(str(values[0])))
                elif len(values) == 1:
                    cells.append(values[0])
                else:
                    cells.append(",".join(str(v) for v in values) if values else None)
            meta = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
            rows.append({"cells": cells, "object": meta})
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv or str(self._rv)},
            "columnDefinitions": definitions,
            "rows": rows,
        }

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle (its storage logic is replaced by _serve below).
        response = await _kmock_apps.RawHandler._handle(self, request)
        if not self.keep_alive and not response.prepared:
            response.force_close()
        if self.request_log_limit is not None and len(self._requests) > self.request_log_limit:
            del self._requests[: -self.request_log_limit // 2]
            del self._reaction._requests[: -self.request_log_limit // 2]
        return response

    async def _serve(self, request: kmock.Request) -> Any:
        # Always a Response with a status: kmock keeps the last one on the shared reaction.
        try:
            result = self._dispatch(request)
        except ApiError as e:
            return Response(status=e.code, payload=e.status())
        return result if isinstance(result, Response) else Response(status=200, payload=result)

    def _dispatch(self, request: kmock.Request) -> Any:
        res = request.resource
        if res is None or res not in self.resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        info = self.resources[res]
        ns, name, sub, params = request.namespace, request.name, request.subresource, request.params
        headers = {key.lower(): value for key, value in request.headers.items()}
        table = "as=Table" in headers.get("accept", "")
        dry_run = "dryRun" in params
        if "protobuf" in headers.get("content-type", ""):
            raise ApiError(415, "UnsupportedMediaType", "the emulator speaks JSON only")
        body: Any = json.loads(request.body) if request.body.strip() else {}
        method = str(request.method.value).upper()
        if method == "GET" and params.get("watch") in {"true", "1"}:
            if name is not None:
                selector = ",".join(
                    filter(None, [params.get("fieldSelector"), f"metadata.name={name}"])
                )
                params = {**params, "fieldSelector": selector}
            stream = self._watch(res, info, ns, params, table)
            return Response(headers={"Content-Type": "application/json"}, payload=stream)
        if method == "GET" and name is None:
            listing = self.list_objects(res, ns, **self._selectors(params))
            if table:
                return self._table(
                    res, info, listing["items"], listing["metadata"]["resourceVersion"]
                )
            return listing
        if method == "GET" and sub in {None, "status", "scale"}:
            obj = self.read_object(res, ns, str(name))
            return (
                self._scale(obj)
                if sub == "scale"
                else self._table(res, info, [obj])
                if table
                else obj
            )
        if method == "POST" and name is None:
            return Response(status=201, payload=self.create_object(res, body, ns, dry_run=dry_run))
        if method == "PATCH" and name is not None:
            content_type = headers.get("content-type", "").split(";")[0]
            patch_type = {
                "application/json-patch+json": "json",
                "application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic",
            }.get(content_type, content_type)
            return self.patch_object(
                res, ns, name, body, patch_type=patch_type, subresource=sub, dry_run=dry_run
            )
        if method == "PUT" and name is not None:
            return self.replace_object(res, ns, name, body, subresource=sub, dry_run=dry_run)
        if method == "DELETE" and sub is None:
            propagation = body.get("propagationPolicy") or params.get("propagationPolicy")
            names = (
                [name]
                if name is not None
                else [
                    obj["metadata"]["name"]
                    for obj in self.list_objects(res, ns, **self._selectors(params))["items"]
                ]
            )
            deleted = [
                self.delete_object(
                    res,
                    ns,
                    n,
                    propagation=propagation,
                    dry_run=dry_run,
                    preconditions=body.get("preconditions"),
                )
                for n in names
            ]
            if name is not None:
                return deleted[0]
            return {
                "apiVersion": (res.group and f"{res.group}/{res.version}") or res.version,
                "kind": f"{info.kind}List",
                "metadata": {},
                "items": deleted,
            }
        raise ApiError(405, "MethodNotAllowed", f"{method} {request.url.path} is not supported")

    async def _serve_version(self, request: kmock.Request) -> Any:
        # As kmock's, but with the core groupVersion and subresources as Kubernetes lists them.
        result = cast(Obj, await super()._serve_version(request))
        result["groupVersion"] = result["groupVersion"].lstrip("/")  # "v1", not "/v1"
        for entry in result["resources"]:
            if "/" in entry["name"]:
                entry.update(verbs=["get", "patch", "update"], shortNames=[], categories=[])
                entry["singularName"] = ""
            if entry["name"].endswith("/scale"):
                entry.update(group="autoscaling", version="v1", kind="Scale")
        return result


# ----------------------------------------------------------------------- jitgate
def jitgate_resources() -> dict[kmock.resource, dict[str, Any]]:
    """jitgate's kinds, as keyword arguments of :meth:`KubeEmulator.register`."""
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    gv = f"{JITGATE_GROUP}/{JITGATE_VERSION}"
    return {
        kmock.resource(f"{gv}/accesspolicies"): dict(
            kind="AccessPolicy",
            singular="accesspolicy",
            namespaced=False,
            shortnames=["ap", "jitpolicy"],
            categories=["jitgate"],
            columns=columns[1:],
        ),
        kmock.resource(f"{gv}/accessrequests"): dict(
            kind="AccessRequest",
            singular="accessrequest",
            namespaced=True,
            shortnames=["ar", "jitreq"],
            categories=["jitgate"],
            subresources=["status"],
            columns=columns,
        ),
        kmock.resource(f"{gv}/grants"): dict(
            kind="Grant",
            singular="grant",
            namespaced=True,
            shortnames=["gr", "jitgrant"],
            categories=["jitgate"],
            subresources=["status"],
            columns=columns,
        ),
    }


def register_jitgate_kinds(
    emulator: KubeEmulator, crds: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = ()
) -> None:
    """Serve AccessPolicy, AccessRequest and Grant: from CRD manifests if given (their
    files, directories or dicts; the CRD objects are created too), else built-in ones."""
    sources = list(crds)
    if sources:
        emulator.load_crds(*sources)
    else:
        for resource, kwargs in jitgate_resources().items():
            emulator.register(resource, **kwargs)


# ----------------------------------------------------------------------- serving
@dataclasses.dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it listens and how clients reach it."""

    emulator: KubeEmulator
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        user: str = "admin",
        namespace: str = "default",
        *,
        users: Iterable[str] = (),
    ) -> Path:
        """A kubeconfig with one context per user (named after it; ``user`` is current).
        Each user's bearer token is its name (see :func:`request_user`)."""
        names = list(dict.fromkeys([user, *users]))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": n, "user": {"token": n}} for n in names],
            "contexts": [
                {"name": n, "context": {"cluster": "emulator", "user": n, "namespace": namespace}}
                for n in names
            ],
            "current-context": user,
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def connection_info(
        self, user: str = "admin", namespace: str = "default"
    ) -> kopf.ConnectionInfo:
        """Credentials for ``@kopf.on.login`` handlers."""
        import kopf

        return kopf.ConnectionInfo(
            server=self.url, scheme="Bearer", token=user, default_namespace=namespace
        )

    def kubernetes_configuration(self, user: str = "admin") -> kubernetes.client.Configuration:
        """A ``kubernetes.client.Configuration`` for ``ApiClient(configuration=...)``."""
        import kubernetes.client

        config = kubernetes.client.Configuration(host=self.url)
        config.api_key = {"authorization": user}
        config.api_key_prefix = {"authorization": "Bearer"}
        return config


@contextlib.asynccontextmanager
async def run_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    emulator: KubeEmulator | None = None,
    jitgate_kinds: bool = True,
    crds: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = (),
) -> AsyncIterator[EmulatorHandle]:
    """Serve an emulator over plain HTTP in the running event loop."""
    emulator = emulator if emulator is not None else KubeEmulator()
    if jitgate_kinds:
        register_jitgate_kinds(emulator, crds)
    elif crds:
        emulator.load_crds(*crds)
    async with emulator:
        # handler_cancellation: a watch handler ends when its client goes away.
        server = aiohttp.web.Server(emulator, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, host, port)
            await site.start()
            yield EmulatorHandle(emulator, host, runner.addresses[0][1])
        finally:
            emulator.close_watches()
            await runner.cleanup()


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    users: Sequence[str] = ("admin",),
    namespace: str = "default",
    crds: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = (),
    ready: Callable[[EmulatorHandle], None] | None = None,
) -> None:
    """Serve until cancelled or SIGINT/SIGTERM; write the kubeconfig, then call ``ready``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    emulator = KubeEmulator(request_log_limit=1000, history_limit=5000)
    async with run_emulator(host, port, emulator=emulator, crds=crds) as handle:
        if kubeconfig is not None:
            handle.write_kubeconfig(kubeconfig, users[0], namespace, users=users[1:])
        if ready is not None:
            ready(handle)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jitgate.devtools.emulator",
        description="Serve an in-memory Kubernetes API emulator (plain HTTP) until stopped.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
    parser.add_argument("--user", action="append", dest="users", help="kubeconfig user (repeat)")
    parser.add_argument("--namespace", default="default", help="the contexts' namespace")
    parser.add_argument("--crds", action="append", default=[], help="CRD file or directory")
    args = parser.parse_args(argv)

    def ready(handle: EmulatorHandle) -> None:
        print(handle.url, flush=True)

    try:
        asyncio.run(
            serve_forever(
                args.host,
                args.port,
                kubeconfig=args.kubeconfig,
                users=args.users or ["admin"],
                namespace=args.namespace,
                crds=args.crds,
                ready=ready,
            )
        )
    except OSError as e:
        print(f"Cannot serve the emulator: {e}.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
