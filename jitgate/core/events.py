"""The audit event vocabulary: what a record says (DESIGN.md §5), and the operator's records.

`AuditEvent` is what the operator and the webhook hand to the audit writer, which adds `v`,
`writer`, `seq`, `prev`, `hash` and `mac` (`jitgate.audit`). Field names on the wire are
camelCase. The operator's records are built here from API objects without I/O; each comes
with a key naming the fact it records (`<uid>/request.approval/2`), so a retried step can
skip what it already wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr

from jitgate.core.api import AccessPolicy, AccessRequest, Approval, Grant, Requester
from jitgate.core.clock import format_time
from jitgate.core.wire import Unreadable

# What the session gateway writes for each exec/attach/port-forward session (DESIGN.md §3b;
# the payloads are built in `jitgate.core.sessions`).
SESSION_STARTED: Final = "session.started"
SESSION_CHUNK: Final = "session.chunk"
SESSION_RESIZE: Final = "session.resize"
SESSION_CONNECTION: Final = "session.connection"  # one port-forward connection opened or closed
SESSION_ENDED: Final = "session.ended"  # it ended by itself: the command exited, the client left
SESSION_TERMINATED: Final = "session.terminated"  # jitgate cut it: expiry, revoke, idle, ...
SESSION_TYPES: Final = (
    SESSION_STARTED,
    SESSION_CHUNK,
    SESSION_RESIZE,
    SESSION_CONNECTION,
    SESSION_ENDED,
    SESSION_TERMINATED,
)
# A `session.connection` record's `state`, and how a connection ended (its `ended`): both
# sides closed it; one side reset it first; the pod's side reported an error (the message
# follows); or it was still open when its session ended (why follows).
CONNECTION_OPENED: Final = "opened"
CONNECTION_CLOSED: Final = "closed"
CONNECTION_STATES: Final = (CONNECTION_OPENED, CONNECTION_CLOSED)
CLOSED_BY_BOTH: Final = "closed"
RESET_BY_CLIENT: Final = "reset by the client"
RESET_BY_POD: Final = "reset by the pod"
POD_ERROR: Final = "error"
OPEN_AT_SESSION_END: Final = "open when the session ended"

# A protected action the webhook allowed (the session gateway's own streams included: those
# records carry the `session` they open).
ACTION_ALLOWED: Final = "action.allowed"

# A click in the Slack app that jitgate refused (unmapped user, webhook or RBAC refusal).
SLACK_REFUSED: Final = "slack.refused"

# The record types the operator, the webhook and the gateway write; `audit.*` types are the
# writer's own.
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
    "grant.exhausted",
    "grant.reviewed",
    SLACK_REFUSED,
    ACTION_ALLOWED,
    "action.denied",
    *SESSION_TYPES,
)
# What a webhook writes when it checks, after a failed write, that its log is writable again.
WEBHOOK_PROBE: Final = "webhook.auditProbe"

_EVENT_CONFIG = ConfigDict(
    frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
)


def format_record_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds: fixed width, so text order is time order."""
    if when.tzinfo is not dt.UTC:  # what clocks give; any other zone is converted first
        if when.tzinfo is None:
            raise ValueError("audit record times must be timezone-aware")
        when = when.astimezone(dt.UTC)
    # %-formatted field by field: the same text as isoformat in half its time (an f-string's
    # format specs cost as much as isoformat; strftime twice that), once per record.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        when.year,
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second,
        when.microsecond,
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


class EventFields(BaseModel):
    """The fields an event and the record it becomes share."""

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
    # Admission records: "verified" when the webhook checked its caller's client certificate
    # (--client-ca), "unverified" when anyone reaching its port could have sent the review.
    # Absent from other records and from logs written before the field existed.
    caller: str | None = None
    # Session records (`session.*`): the session they belong to.
    session: str | None = None


class AuditEvent(EventFields):
    """One thing that happened, before it is chained. `time` defaults to the writer's clock."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=r"^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)+$")
    time: dt.datetime | None = None

    def body(self, default_time: dt.datetime) -> dict[str, Any]:
        """The record's own fields as stored: JSON-ready, camelCase, absent when unset."""
        # `time` is replaced, not excluded: an `exclude` costs more than dumping the field.
        body = self.model_dump(mode="json", exclude_none=True)
        body["time"] = format_record_time(self.time or default_time)
        return body

    @classmethod
    def trusted(cls, stored: dict[str, Any]) -> AuditEvent:
        """The event whose `body` is `stored` plus the writer's `time`, neither validated nor
        dumped: for the webhook's decision records, built once per request from values
        validated already. Validating and dumping the same event costs ~11 us more.

        `stored` must be what `body` would give: JSON-ready, camelCase keys, no None values,
        no `time` (tests compare the two for every record shape the webhook writes).
        """
        # Copied and updated, not filled key by key: the key order stays the fields' (as
        # validation gives it), and the work is C's, not a Python loop's (~2 us a record).
        given = set(stored)
        if not given <= _STORED_KEYS:  # AuditEvent forbids extras
            raise KeyError(", ".join(sorted(given - _STORED_KEYS)))
        values = _UNSET_EVENT.copy()
        values.update(stored)
        for key, name in _ALIASED:
            if key in given:
                values[name] = values.pop(key)
                given.remove(key)
                given.add(name)
        if (actor := values["actor"]) is not None:
            values["actor"] = _trusted_actor(actor)
        if (action := values["action"]) is not None:
            values["action"] = _trusted_action(action)
        return unvalidated(_StoredEvent, values, given, private={"_stored": stored})


class _StoredEvent(AuditEvent):
    """An `AuditEvent.trusted` event: it keeps the stored form it was built from."""

    _stored: dict[str, Any] = PrivateAttr()

    def body(self, default_time: dt.datetime) -> dict[str, Any]:
        private = self.__pydantic_private__
        assert private is not None
        body = dict(private["_stored"])
        body["time"] = format_record_time(self.time or default_time)
        return body

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy whose stored form has `update` too (the webhook adds `caller` so). Only
        text, flags and numbers are taken as they are; any other update is validated.

        Without pydantic's own copy of every slot first: a third of the cost, once per record.
        """
        if deep or not update:
            return super().model_copy(update=update, deep=deep)
        private = self.__pydantic_private__
        assert private is not None
        stored = dict(private["_stored"])
        values = dict(self.__dict__)
        for name, value in update.items():
            key = _KEY_OF_FIELD.get(name)
            if key is None or not (value is None or type(value) in (str, bool, int)):
                copied = super().model_copy(update=update)
                return AuditEvent.model_validate(copied.model_dump())  # type: ignore[return-value]
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
            values[name] = value
        fields_set = self.__pydantic_fields_set__ | update.keys()
        return unvalidated(type(self), values, fields_set, private={"_stored": stored})


Model = TypeVar("Model", bound=BaseModel)


def unvalidated(
    cls: type[Model],
    values: dict[str, Any],
    fields_set: set[str],
    *,
    extra: dict[str, Any] | None = None,
    private: dict[str, Any] | None = None,
) -> Model:
    """A `cls` holding `values` (every field, already of its type), as pydantic's
    `model_construct` builds it, without its walk over every field's alias and default."""
    model = _new(cls)  # a model defines no __new__ of its own
    _set_dict(model, values)
    _set_fields_set(model, fields_set)
    _set_extra(model, extra)
    _set_private(model, private)
    return model


# BaseModel's slots, `__dict__` included, set through their descriptors: a third cheaper than
# `object.__setattr__` (a model is frozen), and `unvalidated` runs four or five times per
# webhook record.
_new: Final = object.__new__
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


_KEY_OF_FIELD: Final = {
    name: field.alias or name for name, field in AuditEvent.model_fields.items()
}
_STORED_KEYS: Final = frozenset(_KEY_OF_FIELD.values())
_ALIASED: Final = tuple((key, name) for name, key in _KEY_OF_FIELD.items() if key != name)
_UNSET_EVENT: Final[dict[str, Any]] = dict.fromkeys(AuditEvent.model_fields)
_UNSET_ACTION: Final[dict[str, Any]] = dict.fromkeys(Action.model_fields)
_ACTION_KEYS: Final = frozenset(Action.model_fields)


def _trusted_actor(stored: dict[str, Any]) -> Actor:
    values = {"user": stored["user"], "groups": tuple(stored.get("groups", ()))}
    return unvalidated(Actor, values, set(stored))


def _trusted_action(stored: dict[str, Any]) -> Action:
    values = _UNSET_ACTION.copy()
    values.update(stored)
    extra: dict[str, Any] = {}
    if len(values) != len(_UNSET_ACTION):  # free-form detail: kept in its stored order
        extra = {key: values.pop(key) for key in stored if key not in _ACTION_KEYS}
    if (command := values["command"]) is not None:
        values["command"] = tuple(command)
    if (replicas := values["replicas"]) is not None:
        values["replicas"] = unvalidated(
            Replicas, {"old": replicas.get("old"), "new": replicas.get("new")}, set(replicas)
        )
    return unvalidated(Action, values, stored.keys() & _ACTION_KEYS, extra=extra)


# ----------------------------------------------------------------- the operator's records


@dataclass(frozen=True)
class Record:
    """An event and the key of the fact it records, so it is written once."""

    key: str
    event: AuditEvent


def actor_of(who: Requester | Approval | None) -> Actor | None:
    if who is None or not who.user:
        return None
    return Actor(user=who.user, groups=tuple(who.groups))


def named(user: str | None) -> Actor | None:
    """An actor known only by name, e.g. from a webhook-stamped annotation."""
    return Actor(user=user) if user else None


def _uid(namespace: str | None, name: str | None, uid: str | None) -> str:
    return uid or f"{namespace}/{name}"


def request_record(
    kind: str,
    request: AccessRequest,
    now: dt.datetime,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    context: dict[str, Any] | None = None,
    grant: str | None = None,
    key_suffix: str = "",
) -> Record:
    requester = request.spec.requester
    base: dict[str, Any] = {"requester": requester.user if requester else None}
    meta = request.metadata
    event = AuditEvent(
        type=kind,
        time=now,
        actor=actor,
        namespace=meta.namespace,
        request=meta.name,
        grant=grant,
        reason=reason,
        context={**base, **(context or {})},
    )
    return Record(f"{_uid(meta.namespace, meta.name, meta.uid)}/{kind}{key_suffix}", event)


def unread_request_record(
    kind: str,
    request: Unreadable,
    now: dt.datetime,
    *,
    reason: str,
    context: dict[str, Any],
) -> Record:
    """A record about a request whose spec could not be read."""
    event = AuditEvent(
        type=kind,
        time=now,
        namespace=request.namespace,
        request=request.name,
        reason=reason,
        context=context,
    )
    return Record(f"{_uid(request.namespace, request.name, request.uid)}/{kind}", event)


def policy_context(policy: AccessPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"name": policy.metadata.name, "spec": policy.spec.to_wire()}


def governing_context(policies: Sequence[AccessPolicy]) -> dict[str, Any]:
    """The governing policies with their specs: `policies` always, and `policy` too when
    exactly one governs (as in records from before policies were composed)."""
    contexts = [policy_context(policy) for policy in policies]
    return {**({"policy": contexts[0]} if len(contexts) == 1 else {}), "policies": contexts}


def governing_names(names: Sequence[str]) -> dict[str, Any]:
    """`governing_context` by name only."""
    return {**({"policy": names[0]} if len(names) == 1 else {}), "policies": list(names)}


def approval_record(
    request: AccessRequest,
    index: int,
    approval: Approval,
    now: dt.datetime,
    *,
    policies: Sequence[AccessPolicy],
    counted_for: Sequence[str],
    ignored_because: str | None,
) -> Record:
    """What the approver decided, the spec and policies they decided on, and which of those
    policies their approval counted towards (`counted` when any)."""
    context: dict[str, Any] = {
        "index": index,
        "decision": approval.decision,
        "decidedAt": format_time(approval.time) if approval.time else None,
        "specDigest": approval.spec_digest,
        **({"via": approval.via} if approval.via else {}),
        "counted": bool(counted_for),
        "countedFor": list(counted_for),
        "spec": request.spec.to_wire(),
        **governing_context(policies),
        "requiredApprovals": request.status.required_approvals,
    }
    if ignored_because:
        context["ignored"] = ignored_because
    return request_record(
        "request.approval",
        request,
        now,
        actor=actor_of(approval),
        reason=approval.comment or None,
        context=context,
        key_suffix=f"/{index}",
    )


def grant_context(grant: Grant) -> dict[str, Any]:
    spec = grant.spec
    return {
        "user": spec.user,
        "actions": [action.to_wire() for action in spec.actions],
        "notBefore": format_time(spec.not_before),
        "expiresAt": format_time(spec.expires_at),
        **governing_names(spec.policy_names),
        "approvals": [approval.to_wire() for approval in spec.approvals],
        "breakGlass": spec.break_glass,
    }


def grant_record(
    kind: str,
    grant: Grant,
    now: dt.datetime,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Record:
    meta = grant.metadata
    event = AuditEvent(
        type=kind,
        time=now,
        actor=actor,
        namespace=meta.namespace,
        request=grant.spec.access_request.name,
        grant=meta.name,
        reason=reason,
        context={**grant_context(grant), **(extra or {})},
    )
    return Record(f"{_uid(meta.namespace, meta.name, meta.uid)}/{kind}", event)
