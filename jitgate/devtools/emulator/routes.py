"""The object API over HTTP: which storage call answers which request.

Routes GET (read, list, watch, ``as=Table``), POST, PATCH, PUT and DELETE (one object or a
collection) on any served kind to :class:`~jitgate.devtools.emulator.store.KubeEmulator`'s
methods; discovery and unknown paths are kmock's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import kmock
from kmock._internal.rendering import Response

from jitgate.devtools.emulator.errors import ApiError
from jitgate.devtools.emulator.patches import PATCH_TYPES
from jitgate.devtools.emulator.selection import paged, selectors

if TYPE_CHECKING:
    from jitgate.devtools.emulator.store import KubeEmulator


def dispatch(emulator: KubeEmulator, request: kmock.Request) -> Any:
    """Answer one request to the object API: a Response, or the object to answer 200 with."""
    res = request.resource
    if res is None or res not in emulator.resources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    info = emulator.resources[res]
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
        stream = emulator.watch_events(res, info, ns, params, table)
        return Response(headers={"Content-Type": "application/json"}, payload=stream)
    if method == "GET" and name is None:
        listing = paged(emulator.list_objects(res, ns, **selectors(params)), params)
        if table:
            return emulator.table(res, listing["items"], listing["metadata"]["resourceVersion"])
        return listing
    if method == "GET" and sub in {None, "status", "scale"}:
        obj = emulator.read_object(res, ns, str(name))
        return (
            emulator.scale_view(obj)
            if sub == "scale"
            else emulator.table(res, [obj])
            if table
            else obj
        )
    if method == "POST" and name is None:
        return Response(status=201, payload=emulator.create_object(res, body, ns, dry_run=dry_run))
    if method == "PATCH" and name is not None:
        content_type = headers.get("content-type", "").split(";")[0]
        patch_type = PATCH_TYPES.get(content_type, content_type)
        return emulator.patch_object(
            res, ns, name, body, patch_type=patch_type, subresource=sub, dry_run=dry_run
        )
    if method == "PUT" and name is not None:
        return emulator.replace_object(res, ns, name, body, subresource=sub, dry_run=dry_run)
    if method == "DELETE" and sub is None:
        propagation = body.get("propagationPolicy") or params.get("propagationPolicy")
        names = (
            [name]
            if name is not None
            else [
                obj["metadata"]["name"]
                for obj in emulator.list_objects(res, ns, **selectors(params))["items"]
            ]
        )
        deleted = [
            emulator.delete_object(
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
