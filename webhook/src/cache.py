"""What the decision path reads: live grants, AccessPolicies and namespace labels, in memory,
and which AccessRequests are revoked (so a revoke holds without the operator: `revocations`).

Watch threads write; request handlers read without blocking on I/O. Policies and namespaces
are replaced as whole immutable snapshots, so a reader never sees a half-applied update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from jitgate.core import wire
from jitgate.core.api import AccessPolicy, Grant
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.grants import is_used_up
from jitgate.core.policy import Policies, UnreadablePolicy, unreadable_policy
from jitgate.core.requests.annotations import REVOKE_ANNOTATION
from jitgate.core.revocations import Revocations, Revoked

logger = logging.getLogger(__name__)

Kind = Literal["grants", "accesspolicies", "namespaces", "accessrequests"]
KINDS: tuple[Kind, ...] = ("grants", "accesspolicies", "namespaces", "accessrequests")
_MAX_AWAITED = 1024


def _name_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def to_indexed_grant(obj: Mapping[str, Any]) -> IndexedGrant | None:
    """The index entry for a Grant object, or None when it is not a valid Grant."""
    grant = wire.read(Grant, obj)
    if isinstance(grant, wire.Unreadable):
        logger.warning(
            "Ignoring the invalid Grant %s/%s: %s", grant.namespace, grant.name, grant.problem
        )
        return None
    meta = grant.metadata
    return IndexedGrant(
        namespace=meta.namespace or "",
        name=meta.name or "",
        uid=meta.uid or "",
        spec=grant.spec,
        being_deleted=meta.deletion_timestamp is not None,
        used_up=is_used_up(grant),
    )


def to_policy(obj: Mapping[str, Any]) -> AccessPolicy | UnreadablePolicy:
    """The policy, or what is known of one that does not validate (which fails closed)."""
    policy = wire.read(AccessPolicy, obj)
    if isinstance(policy, wire.Unreadable):
        logger.warning(
            "The AccessPolicy %s is invalid; protected actions it might govern are denied "
            "until it is fixed: %s",
            policy.name,
            policy.problem,
        )
        return unreadable_policy(obj, policy)
    return policy


def to_revoked(obj: Mapping[str, Any]) -> tuple[Revoked, bool]:
    """An AccessRequest as the revocations know it: (namespace, name, uid), and whether it
    carries the revoke annotation (whatever else about it validates or not)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    namespace, name = _name_of(obj)
    return (namespace, name, str(meta.get("uid") or "")), REVOKE_ANNOTATION in annotations


def to_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(key): str(value) for key, value in labels.items()}


class ClusterCache:
    """The grant index plus policy and namespace snapshots, and which kinds are synced."""

    def __init__(self) -> None:
        self.revocations = Revocations()
        self.grants = GrantIndex(self.revocations)
        self.policies = Policies.of(())
        self.namespaces: Mapping[str, Mapping[str, str]] = MappingProxyType({})
        self._synced: set[Kind] = set()
        # Grants a live read found before the watch delivered them, by key, with when; the
        # watch's delivery of one reports how far it lagged (`on_late_grant`).
        self._awaited: dict[tuple[str, str], float] = {}
        self.on_late_grant: Callable[[float], None] | None = None
        self._changed = threading.Condition()
        self._write = threading.Lock()
        # Called (in the watch thread) after a full list has been swapped in.
        self.on_replace: Callable[[Kind], None] | None = None

    @property
    def synced(self) -> bool:
        return len(self._synced) == len(KINDS)

    def is_synced(self, kind: Kind) -> bool:
        return kind in self._synced

    # Writers: one watch thread per kind, each listing then applying events.

    def replace(self, kind: Kind, objects: Iterable[Mapping[str, Any]]) -> None:
        """Swap in the result of a (re-)list, and mark the kind synced."""
        with self._write:
            if kind == "grants":
                grants = [g for g in map(to_indexed_grant, objects) if g]
                self.grants.replace_all(grants)
            elif kind == "accesspolicies":
                self.policies = Policies.of(map(to_policy, objects))
            elif kind == "accessrequests":
                requests = [to_revoked(obj) for obj in objects]
                self.revocations.listed(
                    (known for known, revoked in requests if revoked),
                    ((namespace, name) for (namespace, name, _), _ in requests),
                )
            else:
                self.namespaces = MappingProxyType(
                    {_name_of(obj)[1]: to_labels(obj) for obj in objects}
                )
            self._synced.add(kind)
        self._notify()
        if self.on_replace is not None:
            self.on_replace(kind)

    def apply(self, kind: Kind, event_type: str, obj: Mapping[str, Any]) -> None:
        """Apply one watch event (ADDED, MODIFIED or DELETED)."""
        namespace, name = _name_of(obj)
        deleted = event_type == "DELETED"
        with self._write:
            if kind == "grants":
                grant = None if deleted else to_indexed_grant(obj)
                found_at = self._awaited.pop((namespace, name), None)
                if found_at is not None and grant is not None and self.on_late_grant is not None:
                    self.on_late_grant(time.monotonic() - found_at)
                if grant is None:
                    self.grants.remove(namespace, name)
                else:
                    self.grants.upsert(grant)
            elif kind == "accesspolicies":
                policies = {
                    p.name if isinstance(p, UnreadablePolicy) else p.metadata.name or "": p
                    for p in self.policies.all()
                }
                if deleted:
                    policies.pop(name, None)
                else:
                    policies[name] = to_policy(obj)
                self.policies = Policies.of(policies.values())
            elif kind == "accessrequests":
                (namespace, name, uid), revoked = to_revoked(obj)
                if deleted:
                    self.revocations.deleted(namespace, name)
                else:
                    self.revocations.watched(namespace, name, uid, revoked=revoked)
            else:
                namespaces = dict(self.namespaces)
                if deleted:
                    namespaces.pop(name, None)
                else:
                    namespaces[name] = to_labels(obj)
                self.namespaces = MappingProxyType(namespaces)
        self._notify()

    def revoke_admitted(self, namespace: str, name: str, uid: str) -> None:
        """This replica admitted a revoke of the AccessRequest: its grant ends here now."""
        self.revocations.admitted(namespace, name, uid)
        self._notify()

    def await_grants(self, keys: Iterable[tuple[str, str]]) -> None:
        """Grants (namespace, name) a live read found that the watch has not delivered yet."""
        now = time.monotonic()
        with self._write:
            for key in keys:
                if len(self._awaited) >= _MAX_AWAITED:
                    break  # only a metric depends on it: never let it grow without bound
                self._awaited.setdefault(key, now)

    # Readers and tests.

    def chain_digest(self, grant: IndexedGrant) -> str:
        """The digest of the approval chain behind `grant` (which links a decision to it)."""
        return grant.chain_digest

    def sizes(self) -> dict[Kind, int]:
        return {
            "grants": len(self.grants),
            "accesspolicies": len(self.policies.by_name) + len(self.policies.unreadable),
            "namespaces": len(self.namespaces),
            "accessrequests": len(self.revocations),  # the revoked ones: all that is kept
        }

    def wait_until(self, predicate: Callable[[ClusterCache], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds after some change, or `timeout` seconds pass."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
