"""A stored audit record (DESIGN.md §5): an event as chained by the writer.

Callers build `jitgate.core.events.AuditEvent`; the writer adds `v`, `writer`, `seq`,
`prev`, `hash` and `mac` and hands back an `AuditRecord`. Field names on the wire are camelCase.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, PrivateAttr

from jitgate.core.clock import parse_time
from jitgate.core.events import AuditEvent, EventFields


class AuditRecord(EventFields):
    """A stored record. Lenient about unknown fields: a newer writer may add some."""

    model_config = ConfigDict(extra="allow")

    v: int
    writer: str
    seq: int
    time: str
    type: str
    prev: str
    hash: str
    mac: str | None = None
    # The record's RFC 6962 leaf hash, when the writer just stored it (`leaf_hash`).
    _leaf: bytes | None = PrivateAttr(default=None)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> AuditRecord:
        return cls.model_validate(data)

    @classmethod
    def of_event(
        cls, event: AuditEvent, stored: Mapping[str, Any], leaf: bytes | None = None
    ) -> AuditRecord:
        """The record `event` became; its parts are validated already, so none is again."""
        fields = {name: getattr(event, name) for name in EventFields.model_fields}
        chain: dict[str, Any] = {
            name: stored.get(name) for name in ("v", "writer", "seq", "prev", "hash", "mac")
        }
        record = cls.model_construct(**fields, **chain, time=stored["time"], type=event.type)
        record._leaf = leaf
        return record

    @property
    def leaf_hash(self) -> str | None:
        """`sha256:<hex>` of the record's Merkle leaf (`tlog`), known to the writer that just
        stored it: what `jitgate audit prove` proves and the webhook's auditAnnotations name."""
        return f"sha256:{self._leaf.hex()}" if self._leaf is not None else None

    @property
    def when(self) -> dt.datetime:
        return parse_time(self.time)

    @property
    def user(self) -> str | None:
        return self.actor.user if self.actor else None
