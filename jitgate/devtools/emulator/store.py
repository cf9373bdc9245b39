"""The emulator: kmock's ``KubernetesEmulator`` with (mostly) real API-server semantics.

kmock 0.8 (pinned: this module overrides its internals) stores objects but lacks what kopf, the
``kubernetes`` client and ``kubectl`` rely on. :class:`KubeEmulator` adds it:

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
* watches: ``?resourceVersion=`` honoured (only later events; a synthetic ADDED replay only
  without one), ``sendInitialEvents`` with the closing BOOKMARK, ``timeoutSeconds``, atomic
  snapshot+subscription, and a bounded event history: a watch from a ``resourceVersion``
  older than it gets an ``ERROR`` event with ``410 Gone`` (force it with
  :meth:`KubeEmulator.expire_history`; drop every open watch with
  :meth:`KubeEmulator.close_watches`);
* creating a CustomResourceDefinition through the API serves its kind (``kubectl apply -f
  crds/`` works), and :meth:`KubeEmulator.load_crds` does the same from YAML files.

The HTTP side (routing requests to these methods) is :mod:`.routes`; tables are :mod:`.tables`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps as _kmock_apps
from kmock._internal.rendering import Response

from jitgate.devtools.emulator import kinds, routes, tables
from jitgate.devtools.emulator.errors import ApiError
from jitgate.devtools.emulator.kmock_adaptations import adapt_kmock
from jitgate.devtools.emulator.patches import apply_patch
from jitgate.devtools.emulator.selection import selector, selectors

__all__ = ["KubeEmulator"]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as in Kubernetes' generateName suffixes
_CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_NAMESPACES = kmock.resource("", "v1", "namespaces")

Obj = dict[str, Any]
_T = TypeVar("_T")
ObjectKey = tuple[kmock.resource, str | None, str]


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    resource: kmock.resource
    type: str
    object: Obj
    old: Obj | None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        adapt_kmock()
        # The scaffold's discovery & 404 fallbacks, but not the emulator's storage fallbacks.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        is_object_url = lambda req: req.resource is not None and req.resource.plural is not None  # noqa: E731
        self._reaction = self.fallback[is_object_url] << self._serve
        if self.builtins:
            self.resources.load_data(kinds.bundled_resources())
            # kopf's peering kinds (kopf.dev only: with zalando.org's too, kopf waits on both).
            self.register("kopf.dev/v1/clusterkopfpeerings", kind="ClusterKopfPeering")
            self.register("kopf.dev/v1/kopfpeerings", kind="KopfPeering", namespaced=True)
            for ns in kinds.STANDARD_NAMESPACES:
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
            verbs=kinds.ALL_VERBS,
            shortnames=shortnames,
            categories=categories,
            subresources=subresources,
        )
        self._columns[res] = [dict(column) for column in columns]
        return res

    def register_crd(self, crd: Mapping[str, Any]) -> list[kmock.resource]:
        """Serve every served version of a CustomResourceDefinition (not stored as an object)."""
        return [self.register(resource, **kwargs) for resource, kwargs in kinds.crd_kinds(crd)]

    def load_crds(self, *sources: kinds.CrdSource) -> list[Obj]:
        """Create CRDs (served at once) from dicts, YAML files or directories of YAML files.

        Without the built-in kinds there is no CustomResourceDefinition kind to store them
        as: they are only served then."""
        result = []
        for crd in kinds.crd_documents(sources):
            if _CRDS not in self.resources:
                self.register_crd(crd)
                result.append(copy.deepcopy(dict(crd)))
                continue
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
            selector(label_selector, fields=False),
            selector(field_selector, fields=True),
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
        base = self.scale_view(old) if subresource == "scale" else copy.deepcopy(old)
        new = apply_patch(base, patch, patch_type)
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
        return self.scale_view(new) if sub == "scale" else new

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
    def scale_view(obj: Obj) -> Obj:
        """The ``autoscaling/v1`` Scale of a workload (its ``scale`` subresource)."""
        match_labels = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
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
                "selector": ",".join(f"{k}={v}" for k, v in match_labels.items()),
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

    async def watch_events(
        self, res: kmock.resource, info: Any, ns: str | None, params: Mapping[str, str], table: bool
    ) -> AsyncIterator[Any]:
        """The events of a watch request (``params`` are its query), as the API server sends."""
        yield b""  # send the headers now, even if there is nothing to stream yet
        labels = selector(params.get("labelSelector"), fields=False)
        fields = selector(params.get("fieldSelector"), fields=True)
        epoch, loop = self._watch_epoch, asyncio.get_running_loop()
        timeout = params.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None

        def render(type_: str, obj: Obj) -> Obj:
            return {"type": type_, "object": self.table(res, [obj]) if table else obj}

        def gone() -> Obj:
            error = ApiError(410, "Expired", "too old resource version").status()
            return {"type": "ERROR", "object": error}

        since = params.get("resourceVersion") or "0"
        if since == "0":  # "most recent" (or any) state: replay it as ADDED, then follow
            cursor, initial = self._rv, self.list_objects(res, ns, **selectors(params))
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

    def table(self, res: kmock.resource, objs: list[Obj], rv: str = "") -> Obj:
        """``objs`` as the Table ``kubectl get`` asks for, with the kind's printer columns."""
        return tables.table(self._columns.get(res) or (), objs, rv or str(self._rv))

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
            result = routes.dispatch(self, request)
        except ApiError as e:
            return Response(status=e.code, payload=e.status())
        return result if isinstance(result, Response) else Response(status=200, payload=result)

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
