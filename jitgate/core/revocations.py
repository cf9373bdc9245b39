"""Revoked AccessRequests, as the webhook knows them without the operator.

`kubectl jit revoke` sets `jitgate.dev/revoke` on the AccessRequest; the operator then deletes
the Grant. Until it does (or while it is down), the Grant still exists, so the webhook must
know of the revoke itself (DESIGN.md §2: "a revocation is honoured by the webhook the moment it
is written"). It learns it two ways:

* **admitted**: the webhook replica that admits the revoke write marks the request at once,
  before the write is even stored, so on that replica nothing authorizes under the grant from
  before `kubectl jit revoke` gets its answer;
* **watched**: every replica watches AccessRequests and keeps the revoked ones (those carrying
  the annotation), so the others learn within their watch's lag, and a replica that starts
  later lists them before it is ready.

A grant is revoked when its `spec.accessRequest` (namespace, name, and uid when both sides know
it) is in either set. An admitted mark is kept until the request is gone: if the write failed
after it was admitted (another webhook refused it, etcd failed), that replica still denies under
the grant, which is the failure that fails closed and only what an authorized person asked for.
Thread-safe: watch threads write, the decision path reads (a dict lookup, none when empty).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

RequestKey = tuple[str, str]  # (namespace, name)
# What one revoked request is known by: its key and its uid ("" when unknown).
Revoked = tuple[str, str, str]
ANY_UID: Final = ""


class Revocations:
    """The revoked AccessRequests one webhook replica knows of."""

    def __init__(self) -> None:
        self._watched: dict[RequestKey, str] = {}
        self._admitted: dict[RequestKey, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._watched.keys() | self._admitted.keys())

    @property
    def empty(self) -> bool:
        """No revoked request known: the decision path's fast case (no lock taken)."""
        return not self._watched and not self._admitted

    # -- writers -------------------------------------------------------------------------

    def admitted(self, namespace: str, name: str, uid: str = ANY_UID) -> None:
        """This replica just admitted a revoke of the request."""
        with self._lock:
            self._admitted[(namespace, name)] = uid

    def watched(self, namespace: str, name: str, uid: str, *, revoked: bool) -> None:
        """The watch delivered the request (added or modified), revoked or not."""
        key = (namespace, name)
        with self._lock:
            if revoked:
                self._watched[key] = uid
                return
            # Not revoked: a new request of the same name (another uid) drops the old marks;
            # the same request seen without the annotation keeps them, failing closed.
            for known in (self._watched, self._admitted):
                if known.get(key) not in (None, ANY_UID, uid):
                    del known[key]

    def deleted(self, namespace: str, name: str) -> None:
        """The request is gone (its grant goes with it, by owner reference)."""
        with self._lock:
            self._watched.pop((namespace, name), None)
            self._admitted.pop((namespace, name), None)

    def listed(self, revoked: Iterable[Revoked], existing: Iterable[RequestKey]) -> None:
        """A full list: the revoked requests, and every request that exists (admitted marks of
        requests that no longer exist are dropped)."""
        fresh = {(namespace, name): uid for namespace, name, uid in revoked}
        present = set(existing)
        with self._lock:
            self._watched = fresh
            self._admitted = {k: v for k, v in self._admitted.items() if k in present}

    # -- readers -------------------------------------------------------------------------

    def covers(self, namespace: str, request: str, request_uid: str) -> bool:
        """Whether a grant issued for this request (its `spec.accessRequest`) is revoked."""
        if self.empty:
            return False
        key = (namespace, request)
        with self._lock:
            return any(
                _same(known.get(key), request_uid) for known in (self._watched, self._admitted)
            )


def _same(known_uid: str | None, grant_uid: str) -> bool:
    if known_uid is None:
        return False
    return known_uid in (ANY_UID, grant_uid) or not grant_uid
