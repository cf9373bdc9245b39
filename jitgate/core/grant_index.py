"""An in-memory index of grants keyed for O(1) lookup by (namespace, user).

The webhook's decision path reads only this index; a watch keeps it current.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import GrantSpec
from jitgate.core.matching import find_authorizing


@dataclass(frozen=True)
class IndexedGrant:
    namespace: str
    name: str
    uid: str
    spec: GrantSpec
    being_deleted: bool = False


class GrantIndex:
    """Thread-safe: a watch thread writes while request handlers read."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], dict[str, IndexedGrant]] = {}
        self._key_of: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (ns, user)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._key_of)

    def upsert(self, grant: IndexedGrant) -> None:
        identity = (grant.namespace, grant.name)
        key = (grant.namespace, grant.spec.user)
        with self._lock:
            self._remove_locked(identity)
            self._by_key.setdefault(key, {})[grant.name] = grant
            self._key_of[identity] = key

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._remove_locked((namespace, name))

    def replace_all(self, grants: list[IndexedGrant]) -> None:
        """Swap in a fresh list (after a re-list) atomically."""
        by_key: dict[tuple[str, str], dict[str, IndexedGrant]] = {}
        key_of: dict[tuple[str, str], tuple[str, str]] = {}
        for grant in grants:
            key = (grant.namespace, grant.spec.user)
            by_key.setdefault(key, {})[grant.name] = grant
            key_of[(grant.namespace, grant.name)] = key
        with self._lock:
            self._by_key, self._key_of = by_key, key_of

    def for_user(self, namespace: str, user: str) -> tuple[IndexedGrant, ...]:
        with self._lock:
            return tuple(self._by_key.get((namespace, user), {}).values())

    def authorizing(
        self, user: str, attempted: AttemptedAction, now: dt.datetime
    ) -> IndexedGrant | None:
        grants = self.for_user(attempted.namespace, user)
        return find_authorizing(
            ((grant, grant.spec, grant.being_deleted) for grant in grants), user, attempted, now
        )

    def _remove_locked(self, identity: tuple[str, str]) -> None:
        key = self._key_of.pop(identity, None)
        if key is None:
            return
        bucket = self._by_key.get(key, {})
        bucket.pop(identity[1], None)
        if not bucket:
            self._by_key.pop(key, None)
