"""Bounded, timed reads of the cluster for the decisions the cache cannot answer alone.

An autoscaler is decided from its target's current replicas, a namespace delete from the
protected objects the namespace holds, and an owner's delete from the protected objects that
name it (through intermediate owners), and a CronJob's history cut from its Jobs' owners,
conditions and start times; all are read from the API server while the review waits. A
new AccessRequest's pod names are checked against the namespace's pods (`pod_names`), only to
warn; an extension's earlier request is read to check it (`access_request`). Every read
has a deadline well inside the webhook's own timeout, lists are paged and capped, and any
failure raises `LookupFailed`, which the service turns into a denial. Lists ask for metadata
only (PartialObjectMetadataList): a Secret's data never reaches the webhook. Jobs are the one
exception: their status is read, in full, for a CronJob's history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from jitgate.core.admission.indirect import HistoryJob, Listed
from jitgate.core.api import GROUP, VERSION
from jitgate.core.vocabulary import JOBS, PODS

# The API versions of the groups jitgate's users usually protect; other groups are asked.
_KNOWN_VERSIONS = {"": "v1", "apps": "v1", "batch": "v1", "autoscaling": "v2"}
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_JSON = "application/json"
_PAGE_SIZE = 500
# More protected objects than this in one namespace: the delete is refused rather than
# decided on a partial list (delete them first, with a grant, or raise the bound).
MAX_OBJECTS = 5_000
# The whole read must end well inside the webhook's timeoutSeconds (5 s in the chart).
DEADLINE_S = 3.0
_REQUEST_TIMEOUT = (1.0, 2.5)  # connect, read: per HTTP call


class LookupFailed(RuntimeError):
    """The cluster could not be read; the message says what, in one clause."""


class ClusterReader(Protocol):
    """What the indirect decisions read from the API server."""

    async def replicas(self, namespace: str, resource: str, name: str) -> int | None:
        """The target's `spec.replicas` as its scale subresource says, None if it is gone."""
        ...

    async def objects(
        self, namespace: str, resources: Sequence[str]
    ) -> Mapping[str, Sequence[Listed]]:
        """The objects of each resource in `namespace` (resources not served have none)."""
        ...

    async def history_jobs(self, namespace: str) -> Sequence[HistoryJob]:
        """Every Job in `namespace`, as a CronJob's history reads it."""
        ...

    async def pod_names(self, namespace: str) -> Sequence[str]:
        """The names of the pods in `namespace`."""
        ...

    async def access_request(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """One AccessRequest as stored, None if there is none."""
        ...


class NoReader:
    """The reader of a webhook that has no API server to read: every lookup fails."""

    async def replicas(self, namespace: str, resource: str, name: str) -> int | None:
        raise LookupFailed("it has no connection to the API server")

    async def objects(
        self, namespace: str, resources: Sequence[str]
    ) -> Mapping[str, Sequence[Listed]]:
        raise LookupFailed("it has no connection to the API server")

    async def history_jobs(self, namespace: str) -> Sequence[HistoryJob]:
        raise LookupFailed("it has no connection to the API server")

    async def pod_names(self, namespace: str) -> Sequence[str]:
        raise LookupFailed("it has no connection to the API server")

    async def access_request(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        raise LookupFailed("it has no connection to the API server")


class ApiReader:
    """Reads through the webhook's own API client (its ServiceAccount's RBAC)."""

    def __init__(self, api: k8s.ApiClient, *, deadline: float = DEADLINE_S) -> None:
        self._api = api
        self._deadline = deadline
        self._versions: dict[str, str] = dict(_KNOWN_VERSIONS)

    async def replicas(self, namespace: str, resource: str, name: str) -> int | None:
        what = f"the replicas of {resource} {name}"
        scale = await self._timed(what, self._get, namespace, resource, name, "scale")
        if scale is None:
            return None
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise LookupFailed(f"{what} are not a count: {replicas!r}")
        return replicas

    async def objects(
        self, namespace: str, resources: Sequence[str]
    ) -> Mapping[str, Sequence[Listed]]:
        what = f"the objects in namespace {namespace}"
        found: dict[str, Sequence[Listed]] = await self._timed(
            what, self._list_all, namespace, resources
        )
        return found

    async def history_jobs(self, namespace: str) -> Sequence[HistoryJob]:
        what = f"the Jobs in namespace {namespace}"
        jobs: list[HistoryJob] = await self._timed(
            what, self._list, namespace, JOBS, MAX_OBJECTS, _JSON, _history_job
        )
        return jobs

    async def pod_names(self, namespace: str) -> Sequence[str]:
        what = f"the pods in namespace {namespace}"
        pods: list[Listed] = await self._timed(
            what, self._list, namespace, PODS, MAX_OBJECTS, _METADATA_ONLY, _listed
        )
        return [pod.name for pod in pods]

    async def access_request(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        what = f"AccessRequest {name} in namespace {namespace}"
        found: Mapping[str, Any] | None = await self._timed(
            what, self._get_request, namespace, name
        )
        return found

    def _get_request(self, namespace: str, name: str) -> Any:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/accessrequests/{name}"
        try:
            return self._call(path, [], _JSON)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def _timed(self, what: str, read: Any, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(read, *args), self._deadline)
        except TimeoutError:
            raise LookupFailed(f"reading {what} took longer than {self._deadline:g}s") from None
        except LookupFailed:
            raise
        except ApiException as error:
            raise LookupFailed(f"reading {what} failed: {error.status} {error.reason}") from None
        except Exception as error:  # network errors, malformed answers: fail closed
            raise LookupFailed(f"reading {what} failed: {error}") from None

    # Blocking calls, run in a worker thread.

    def _call(self, path: str, query: list[tuple[str, Any]], accept: str) -> Any:
        method, url, headers, _body, _post = self._api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method, url, header_params=headers, _request_timeout=_REQUEST_TIMEOUT
        )
        try:
            data = response.read()  # type: ignore[no-untyped-call]
        finally:
            response.response.release_conn()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason)
        return json.loads(data)

    def _version(self, group: str) -> str:
        known = self._versions.get(group)
        if known is not None:
            return known
        answer = self._call(f"/apis/{group}", [], "application/json")
        version = str((answer.get("preferredVersion") or {}).get("version") or "")
        if not version:
            raise LookupFailed(f"the API group {group} names no preferred version")
        self._versions[group] = version
        return version

    def _path(self, namespace: str, resource: str) -> str:
        plural, _, group = resource.partition(".")
        version = self._version(group)
        root = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return f"{root}/namespaces/{namespace}/{plural}"

    def _get(self, namespace: str, resource: str, name: str, sub: str) -> Any:
        try:
            return self._call(
                f"{self._path(namespace, resource)}/{name}/{sub}", [], "application/json"
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _list_all(self, namespace: str, resources: Sequence[str]) -> dict[str, list[Listed]]:
        found: dict[str, list[Listed]] = {}
        total = 0
        for resource in resources:
            try:
                names = self._list(
                    namespace, resource, MAX_OBJECTS - total, _METADATA_ONLY, _listed
                )
            except ApiException as error:
                if error.status == 404:  # a resource this cluster does not serve
                    continue
                raise
            total += len(names)
            if names:
                found[resource] = names
        return found

    def _list(
        self,
        namespace: str,
        resource: str,
        room: int,
        accept: str,
        read: Callable[[Mapping[str, Any]], T],
    ) -> list[T]:
        path = self._path(namespace, resource)
        names: list[T] = []
        token = ""
        for _page in range(MAX_OBJECTS // _PAGE_SIZE + 1):
            query: list[tuple[str, Any]] = [("limit", _PAGE_SIZE)]
            if token:
                query.append(("continue", token))
            body = self._call(path, query, accept)
            items = body.get("items") or []  # an empty metadata-only list says null
            names += [read(item) for item in items]
            if len(names) > room:
                raise LookupFailed(
                    f"namespace {namespace} holds more than {MAX_OBJECTS} protected objects"
                )
            token = str((body.get("metadata") or {}).get("continue") or "")
            if not token:
                return names
        raise LookupFailed(f"namespace {namespace} holds more than {MAX_OBJECTS} protected objects")


T = TypeVar("T")


def _listed(item: Mapping[str, Any]) -> Listed:
    meta = item.get("metadata") or {}
    owners = tuple(str(ref.get("uid")) for ref in meta.get("ownerReferences") or ())
    return Listed(str(meta.get("name")), str(meta.get("uid")), owners)


def _history_job(item: Mapping[str, Any]) -> HistoryJob:
    """A Job as the CronJob controller sees it: its controller's name (the first owner
    reference marked controller), the first Complete or Failed condition that is True, and
    its start time (one that does not parse leaves the order unknown)."""
    meta = item.get("metadata") or {}
    status = item.get("status") or {}
    controller = next(
        (
            str(ref.get("name"))
            for ref in meta.get("ownerReferences") or ()
            if ref.get("controller")
        ),
        None,
    )
    succeeded = next(
        (
            condition.get("type") == "Complete"
            for condition in status.get("conditions") or ()
            if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True"
        ),
        None,
    )
    started = status.get("startTime")
    try:
        start = datetime.fromisoformat(started) if started is not None else None
    except (TypeError, ValueError):
        return HistoryJob(str(meta.get("name")), controller, succeeded, None, start_readable=False)
    if start is not None and start.tzinfo is None:
        return HistoryJob(str(meta.get("name")), controller, succeeded, None, start_readable=False)
    return HistoryJob(str(meta.get("name")), controller, succeeded, start)
