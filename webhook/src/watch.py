"""Keep the `ClusterCache` current: list, then watch, Grants, AccessPolicies, Namespaces and
AccessRequests (for their revokes).

Each kind has its own thread running the blocking `kubernetes` client, so the event loop that
answers admission reviews never waits on the API server. A watch that ends is resumed from the
last resourceVersion; one that expired (410 Gone) is replaced by a fresh list; errors are
retried with a bounded, jittered exponential backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jitgate.webhook.cache import KINDS, ClusterCache, Kind
from jitgate.webhook.metrics import Metrics
from jitgate.webhook.uses import Conflict, Gone, GrantStore
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from jitgate.core.api import GROUP, VERSION
from jitgate.core.grants import LABEL_USER, user_label

logger = logging.getLogger(__name__)

_PAGE_SIZE = 500
_MAX_LINE = 16 * 1024 * 1024  # a watch event larger than this is a protocol error


class WatchExpired(Exception):
    """The resourceVersion is too old to resume from; the kind must be listed again."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between `initial` and `maximum` seconds, with jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        # Jitter spreads reconnecting replicas so they do not hit the API server in step.
        return base * rng.uniform(0.5, 1.0)


def _lister(api: k8s.ApiClient, kind: Kind) -> Callable[..., Any]:
    if kind == "namespaces":
        return k8s.CoreV1Api(api).list_namespace
    objects = k8s.CustomObjectsApi(api)

    def list_custom(**kwargs: Any) -> Any:
        return objects.list_cluster_custom_object(GROUP, VERSION, kind, **kwargs)

    return list_custom


_GRANT_PAGE = 500


def read_grants(
    api: k8s.ApiClient, namespace: str, user: str, limit: int, timeout: float
) -> list[dict[str, Any]]:
    """Up to `limit` of `user`'s Grants in `namespace` (by their `LABEL_USER`), read now in
    pages, all within `timeout` seconds (`jitgate.webhook.livegrants`). Only that user's: a
    namespace with hundreds of others' Grants must not slow the read past its timeout."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    token: str | None = None
    while len(items) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"reading the Grants of {namespace} took over {timeout}s")
        page: dict[str, Any] = {
            "limit": min(_GRANT_PAGE, limit - len(items)),
            "label_selector": f"{LABEL_USER}={user_label(user)}",
        }
        if token:
            page["_continue"] = token
        response: Any = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "grants",
            **page,
            _preload_content=False,
            _request_timeout=(remaining, remaining),
        )
        try:
            listing = json.loads(response.data)
        finally:
            response.release_conn()
        items.extend(listing.get("items") or [])
        token = (listing.get("metadata") or {}).get("continue")
        if not token:
            break
    return items


def grant_store(api: k8s.ApiClient) -> GrantStore:
    """Reading one Grant and replacing its status, for counting uses (`jitgate.webhook.uses`)."""
    objects = k8s.CustomObjectsApi(api)

    def call(method: Callable[..., Any], *args: Any, timeout: float) -> Any:
        try:
            response = method(
                GROUP, VERSION, *args, _preload_content=False, _request_timeout=(timeout, timeout)
            )
        except ApiException as error:
            if error.status == 409:
                raise Conflict() from error
            if error.status == 404:
                raise Gone() from error
            raise
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def read(namespace: str, name: str, timeout: float) -> Any:
        return call(
            objects.get_namespaced_custom_object, namespace, "grants", name, timeout=timeout
        )

    def replace_status(namespace: str, name: str, body: Any, timeout: float) -> Any:
        return call(
            objects.replace_namespaced_custom_object_status,
            namespace,
            "grants",
            name,
            body,
            timeout=timeout,
        )

    return GrantStore(read, replace_status)


def _lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        if len(buffer) > _MAX_LINE:
            raise ValueError("a watch event exceeded 16 MiB")
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


class KindWatcher:
    """One kind's list-then-watch loop, in its own daemon thread."""

    def __init__(
        self,
        kind: Kind,
        api: k8s.ApiClient,
        cache: ClusterCache,
        stopping: threading.Event,
        *,
        metrics: Metrics | None = None,
        backoff: Backoff = Backoff(),
        read_timeout: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self._list = _lister(api, kind)
        self._cache = cache
        self._stopping = stopping
        self._metrics = metrics
        self._backoff = backoff
        self._read_timeout = read_timeout
        self._rng = rng or random.Random()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"jitgate-watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def interrupt(self) -> None:
        """Unblock a thread waiting on the watch stream (called after `stopping` is set)."""
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # it may be closed already
                response.shutdown()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
                attempt = 0
            except WatchExpired:
                logger.info("The %s watch expired; listing again.", self.kind)
                version = None
            except Exception as error:  # any failure means reconnecting
                if self._stopping.is_set():
                    break
                delay = self._backoff.delay(attempt, self._rng)
                attempt += 1
                logger.warning(
                    "Watching %s failed (%s); retrying in %.2fs.", self.kind, error, delay
                )
                if self._metrics is not None:
                    self._metrics.watch_errors.labels(self.kind).inc()
                self._stopping.wait(delay)

    def _call(self, **kwargs: Any) -> Any:
        try:
            response = self._list(
                _preload_content=False, _request_timeout=(10, self._read_timeout), **kwargs
            )
        except ApiException as error:
            if error.status == 410:
                raise WatchExpired() from None
            raise
        self._response = response
        if self._stopping.is_set():
            self.interrupt()
        return response

    def _relist(self) -> str:
        items: list[dict[str, Any]] = []
        token: str | None = None
        for _page in range(1_000_000):  # bounded: 500 million objects is beyond any cluster
            kwargs: dict[str, Any] = {"limit": _PAGE_SIZE}
            if token:
                kwargs["_continue"] = token
            response = self._call(**kwargs)
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        self._cache.replace(self.kind, items)
        if self._metrics is not None:
            self._metrics.watch_lists.labels(self.kind).inc()
        return str(meta.get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        """Apply events until the stream ends; the last resourceVersion seen is returned."""
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            # A server-side timeout a little under the read timeout ends idle watches cleanly.
            "timeout_seconds": max(1, int(self._read_timeout * self._rng.uniform(0.7, 0.9))),
        }
        if version:
            kwargs["resource_version"] = version
        response = self._call(**kwargs)
        try:
            for line in _lines(response):
                version = self._handle(json.loads(line), version)
                if self._stopping.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        return version

    def _handle(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpired()
            raise RuntimeError(f"the watch reported {obj.get('reason')}: {obj.get('message')}")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._cache.apply(self.kind, kind, obj)
        return str((obj.get("metadata") or {}).get("resourceVersion") or version)


class ClusterWatch:
    """The watchers the webhook needs (one per kind), started and stopped together."""

    def __init__(
        self,
        api: k8s.ApiClient,
        cache: ClusterCache,
        *,
        metrics: Metrics | None = None,
        backoff: Backoff = Backoff(),
        read_timeout: float = 300.0,
    ) -> None:
        self._stopping = threading.Event()
        self.watchers = [
            KindWatcher(
                kind,
                api,
                cache,
                self._stopping,
                metrics=metrics,
                backoff=backoff,
                read_timeout=read_timeout,
            )
            for kind in KINDS
        ]

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for watcher in self.watchers:
            watcher.interrupt()
        for watcher in self.watchers:
            watcher.join(timeout)
