"""What an audit record says (DESIGN.md §5), as the operator and webhook hand it over.

`AuditEvent` is what callers build; the writer adds `v`, `writer`, `seq`, `prev`, `hash`
and `mac` and hands back an `AuditRecord`. Field names on the wire are camelCase.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from jitgate.audit.timefmt import format_record_time
from jitgate.core.clock import parse_time

# The record types the operator and the webhook write; `audit.*` types are the writer's own.
RECORD_TYPES: Final = (
    "request.created",
    "request.approval",
    "request.approved",
    "request.denied",
    "request.expired",
    "request.cancelled",
    "grant.created",
    "grant.expired",
    "grant.revoked",
    "grant.reviewed",
    "action.allowed",
    "action.denied",
)

_EVENT_CONFIG = ConfigDict(
    frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
)


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    groups: tuple[str, ...] = ()


class Replicas(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    old: int | None = None
    new: int | None = None


class Action(BaseModel):
    """The action asked for or attempted; free-form detail (tty, stdin, ports, kind, labels,
    owner, objectDigest, ...) rides along as extra fields."""

    model_config = ConfigDict(frozen=True, extra="allow")

    verb: str
    resource: str | None = None
    name: str | None = None
    subresource: str | None = None
    container: str | None = None
    command: tuple[str, ...] | None = None
    replicas: Replicas | None = None


class _Fields(BaseModel):
    model_config = _EVENT_CONFIG

    actor: Actor | None = None
    namespace: str | None = None
    action: Action | None = None
    request: str | None = None
    grant: str | None = None
    admission_uid: str | None = Field(default=None, alias="admissionUID")
    dry_run: bool | None = Field(default=None, alias="dryRun")
    reason: str | None = None
    context: dict[str, JsonValue] | None = None


class AuditEvent(_Fields):
    """One thing that happened, before it is chained. `time` defaults to the writer's clock."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=r"^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)+$")
    time: dt.datetime | None = None

    def body(self, default_time: dt.datetime) -> dict[str, Any]:
        """The record's own fields as stored: JSON-ready, camelCase, absent when unset."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"time"})
        body["time"] = format_record_time(self.time or default_time)
        return body


class AuditRecord(_Fields):
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

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> AuditRecord:
        return cls.model_validate(data)

    @classmethod
    def of_event(cls, event: AuditEvent, stored: Mapping[str, Any]) -> AuditRecord:
        """The record `event` became; its parts are validated already, so none is again."""
        fields = {name: getattr(event, name) for name in _Fields.model_fields}
        chain: dict[str, Any] = {
            name: stored.get(name) for name in ("v", "writer", "seq", "prev", "hash", "mac")
        }
        return cls.model_construct(**fields, **chain, time=stored["time"], type=event.type)

    @property
    def when(self) -> dt.datetime:
        return parse_time(self.time)

    @property
    def user(self) -> str | None:
        return self.actor.user if self.actor else None
