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
from jitgate.core.events import AuditEvent, EventFields, unvalidated


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
        """The record `event` became; its parts are validated already, so none is again.

        What `model_construct` would build, without its walk over every field's alias and
        default and the private attribute set through `__setattr__`: that walk cost as much
        as chaining the record, once per append (`unvalidated`).
        """
        # The event's fields copied, its `type` and `time` replaced in the record's field
        # order (the order validation gives): cheaper than picking the fields one by one.
        values = event.__dict__.copy()
        del values["type"], values["time"]
        values["v"] = stored["v"]
        values["writer"] = stored["writer"]
        values["seq"] = stored["seq"]
        values["time"] = stored["time"]
        values["type"] = event.type
        values["prev"] = stored["prev"]
        values["hash"] = stored["hash"]
        values["mac"] = stored.get("mac")
        return unvalidated(cls, values, set(_RECORD_FIELDS), extra={}, private={"_leaf": leaf})

    @property
    def leaf_hash(self) -> str | None:
        """`sha256:<hex>` of the record's Merkle leaf (`tlog`), known to the writer that just
        stored it: what `jitgate audit prove` proves and the webhook's auditAnnotations name."""
        # From pydantic's private store directly: `self._leaf` goes through the model's
        # `__getattr__`, ~1.8 us a read (on every allow, for its auditAnnotations).
        leaf: bytes | None = (self.__pydantic_private__ or {}).get("_leaf")
        return f"sha256:{leaf.hex()}" if leaf is not None else None

    @property
    def when(self) -> dt.datetime:
        return parse_time(self.time)

    @property
    def user(self) -> str | None:
        return self.actor.user if self.actor else None


_RECORD_FIELDS = frozenset(AuditRecord.model_fields)
