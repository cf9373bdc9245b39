"""An in-memory index of grants keyed for O(1) lookup by (namespace, user).

The webhook's decision path reads only this index; a watch keeps it current.

Memory: a webhook holds every live grant of the cluster, so an entry is kept compact: the
validated spec as its JSON bytes (a few hundred bytes, where the pydantic model with its
nested models takes ~4 KiB), parsed again when a decision reads it, through a bounded cache
of recently read specs (`PARSED_SPECS`); the identifying strings interned where they repeat.
A parsed spec is cached as its `GrantTerms` (what matching reads, computed once per parse):
an updated grant has other bytes, so it is parsed, and its terms computed, afresh.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import threading
from typing import Any, Final

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import GrantSpec
from jitgate.core.canonical import digest
from jitgate.core.matching import GrantTerms, find_authorizing
from jitgate.core.revocations import Revocations

# Parsed specs kept for the decisions that read them again (the users acting right now).
PARSED_SPECS: Final = 2048


@functools.lru_cache(maxsize=PARSED_SPECS)
def _parsed(wire: bytes) -> GrantTerms:
    return GrantTerms.of(GrantSpec.model_validate_json(wire))


class IndexedGrant:
    """One live grant: which Grant object it is, whose, and its spec (read on demand)."""

    __slots__ = (
        "_wire",
        "being_deleted",
        "chain_digest",
        "name",
        "namespace",
        "request",
        "request_uid",
        "revoked",
        "uid",
        "used_up",
        "user",
    )

    namespace: str
    name: str
    uid: str
    user: str
    being_deleted: bool
    # Its AccessRequest (name and uid) was revoked; the operator may not have deleted the
    # Grant yet (`jitgate.core.revocations`).
    revoked: bool
    # A grant with maxUses whose every use is counted (status.uses): its denial says so.
    used_up: bool
    request: str
    request_uid: str
    # The digest of the approval chain behind the grant, which links a decision to it.
    chain_digest: str
    _wire: bytes

    def __init__(
        self,
        namespace: str,
        name: str,
        uid: str,
        spec: GrantSpec,
        being_deleted: bool = False,
        used_up: bool = False,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "namespace", sys.intern(namespace))
        setattr_(self, "name", name)
        setattr_(self, "uid", uid)
        setattr_(self, "user", sys.intern(spec.user))
        setattr_(self, "being_deleted", being_deleted)
        setattr_(self, "revoked", False)
        setattr_(self, "used_up", used_up)
        setattr_(self, "request", spec.access_request.name)
        setattr_(self, "request_uid", spec.access_request.uid)
        setattr_(self, "chain_digest", digest([a.to_wire() for a in spec.approvals]))
        setattr_(self, "_wire", GrantSpec.__pydantic_serializer__.to_json(spec, by_alias=True))

    @property
    def spec(self) -> GrantSpec:
        return _parsed(self._wire).spec

    @property
    def terms(self) -> GrantTerms:
        """What matching reads of the spec (`jitgate.core.matching.GrantTerms`)."""
        return _parsed(self._wire)

    @property
    def ending(self) -> bool:
        """Deleted or revoked: it authorizes nothing any more, whatever its window says."""
        return self.being_deleted or self.revoked

    def as_revoked(self) -> IndexedGrant:
        """The same grant, marked revoked."""
        marked = object.__new__(IndexedGrant)
        for slot in IndexedGrant.__slots__:
            object.__setattr__(marked, slot, getattr(self, slot))
        object.__setattr__(marked, "revoked", True)
        return marked

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"an IndexedGrant is immutable: cannot set {name}")

    def _identity(self) -> tuple[str, str, str, bool, bool, bool, bytes]:
        return (
            self.namespace,
            self.name,
            self.uid,
            self.being_deleted,
            self.revoked,
            self.used_up,
            self._wire,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexedGrant):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"IndexedGrant({self.namespace}/{self.name}, user={self.user!r})"


class GrantIndex:
    """Thread-safe: a watch thread writes while request handlers read. Grants whose request
    `revocations` names are handed out marked `revoked`."""

    def __init__(self, revocations: Revocations | None = None) -> None:
        self.revocations = revocations if revocations is not None else Revocations()
        # (namespace, user) -> that user's grants there (usually one: a tuple, not a dict).
        self._by_key: dict[tuple[str, str], tuple[IndexedGrant, ...]] = {}
        self._by_name: dict[str, dict[str, IndexedGrant]] = {}  # namespace -> name -> grant
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(names) for names in self._by_name.values())

    def upsert(self, grant: IndexedGrant) -> None:
        with self._lock:
            self._remove_locked(grant.namespace, grant.name)
            self._by_name.setdefault(grant.namespace, {})[grant.name] = grant
            key = (grant.namespace, grant.user)
            self._by_key[key] = (*self._by_key.get(key, ()), grant)

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._remove_locked(namespace, name)

    def replace_all(self, grants: list[IndexedGrant]) -> None:
        """Swap in a fresh list (after a re-list) atomically."""
        by_name: dict[str, dict[str, IndexedGrant]] = {}
        for grant in grants:
            by_name.setdefault(grant.namespace, {})[grant.name] = grant
        listed: dict[tuple[str, str], list[IndexedGrant]] = {}
        for names in by_name.values():
            for grant in names.values():
                listed.setdefault((grant.namespace, grant.user), []).append(grant)
        by_key = {key: tuple(found) for key, found in listed.items()}
        with self._lock:
            self._by_key, self._by_name = by_key, by_name

    def for_user(self, namespace: str, user: str) -> tuple[IndexedGrant, ...]:
        with self._lock:
            grants = self._by_key.get((namespace, user), ())
        if self.revocations.empty:
            return grants
        return tuple(self._marked(grant) for grant in grants)

    def get(self, namespace: str, name: str) -> IndexedGrant | None:
        """One grant by name (marked `revoked` when its request was), None when not held."""
        with self._lock:
            grant = self._by_name.get(namespace, {}).get(name)
        return self._marked(grant) if grant is not None else None

    def _marked(self, grant: IndexedGrant) -> IndexedGrant:
        if grant.revoked or not self.revocations.covers(
            grant.namespace, grant.request, grant.request_uid
        ):
            return grant
        return grant.as_revoked()

    def authorizing(
        self, user: str, attempted: AttemptedAction, now: dt.datetime
    ) -> IndexedGrant | None:
        grants = self.for_user(attempted.namespace, user)
        return find_authorizing(
            ((grant, grant.terms, grant.ending) for grant in grants), user, attempted, now
        )

    def _remove_locked(self, namespace: str, name: str) -> None:
        names = self._by_name.get(namespace)
        grant = names.pop(name, None) if names is not None else None
        if grant is None:
            return
        if not names:
            del self._by_name[namespace]
        key = (namespace, grant.user)
        left = tuple(g for g in self._by_key.get(key, ()) if g.name != name)
        if left:
            self._by_key[key] = left
        else:
            self._by_key.pop(key, None)
