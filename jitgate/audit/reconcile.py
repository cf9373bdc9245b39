"""Reconciling jitgate's log with the API server's own audit log (audit.k8s.io/v1 Events).

Each log is evidence about the other. jitgate's allowed answers carry auditAnnotations
naming their record (`writer`, `seq`, `leaf`), which the API server writes into its event
under the webhook's name (`connect.actions.jitgate.dev/seq`). Matching both ways names:

- **unrecorded**: the API server allowed a protected action (exec, attach, port-forward;
  a delete or a scale of a workload) by a user who is not exempt, and no jitgate record
  answers for it: jitgate was bypassed (webhook configuration changed, failure policy,
  another path), or its record is gone;
- **unheard**: a jitgate `action.allowed` record of a webhook, within the time the API
  server's log covers, that no API server event names: forged (a review POSTed to the
  webhook by someone other than the API server) or lost from the API server's log; not
  an earlier try of a request the API server logged (below);
- **mismatched**: an event naming a record the log does not have, or one whose leaf hash,
  user or namespace differ from the record's (rewritten on one side).

Records of one admission review share its `admissionUID` and only the last allow's
annotations reach the event, so one named record accounts for its whole review.

The API server also validates one request more than once, and gives each try an admission
uid of its own: an update or patch again after each write conflict (a contended scale), a
delete again when its cached copy was stale. Nothing in a review tells a try from a new
request, so the webhook without `--apiserver-traces` records each try it allows, and the
event names one of those records only. An allowed record no event names is an earlier
**try** of an event's request (counted, not a finding) when the record the event names has
its grant, user, namespace, verb, resource, name and dry run; the event is an update or patch
of that workload or its scale, or a delete of it (its user and object the record's); and the
record's time lies within the request's lifetime, received to ResponseComplete, compared at
the second (the webhook's clock times the records, the API server's the events). What that
could hide: a forged allow copying a logged request's grant, user and object, timed within
it, which claims nothing that request did not do.

A deletecollection is one API server event but an admission review per object (recorded
with `action.via: deletecollection`), and the event keeps one review's annotations: the
allowed collection delete of that user, namespace and resource accounts for every item's
record. Dry runs are matched like any request. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from jitgate.audit.tlog import record_leaf
from jitgate.core.clock import parse_time, whole_seconds

CONNECT: Final = frozenset({"exec", "attach", "portforward"})
WORKLOADS: Final = frozenset(
    {"pods", "deployments", "statefulsets", "replicasets", "daemonsets", "replicationcontrollers"}
)
ALLOWED: Final = "action.allowed"
# The requests the API server validates again, each try with a review uid of its own, and
# the verb of their tries' records: an update or patch after a write conflict (jitgate
# records a replicas change, as a scale), a delete on a stale cached copy.
RETRIED: Final = {"update": "scale", "patch": "scale", "delete": "delete"}

Kind = Literal["unrecorded", "unheard", "mismatched"]


class ApiserverLogError(ValueError):
    """A line of the API server's audit log that is not an audit.k8s.io/v1 Event."""


@dataclass(frozen=True)
class ApiserverEvent:
    """One request as the API server's audit log tells it (its stages merged)."""

    audit_id: str
    time: dt.datetime  # received
    completed: dt.datetime | None  # its ResponseComplete (or Panic) stage, if logged
    user: str
    groups: tuple[str, ...]
    verb: str
    namespace: str
    resource: str
    api_group: str
    subresource: str
    name: str
    code: int | None
    annotations: Mapping[str, str]

    @property
    def allowed(self) -> bool:
        return self.code is not None and self.code < 400

    @property
    def what(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.user} {self.verb} {resource} {where}"

    def record_ref(self) -> tuple[str, int] | None:
        """The jitgate record the event names: (writer, seq), from any webhook's annotations."""
        for key, writer in self.annotations.items():
            prefix, _, field = key.rpartition("/")
            if field != "writer" or not prefix:
                continue
            seq = self.annotations.get(f"{prefix}/seq", "")
            if seq.isdigit():
                return writer, int(seq)
        return None

    def leaf(self) -> str | None:
        return next((v for k, v in self.annotations.items() if k.endswith("/leaf")), None)


def parse_apiserver_log(lines: Iterable[bytes]) -> list[ApiserverEvent]:
    """The requests of an audit log file (JSON lines), each once, in the order first seen."""
    merged: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as error:
            raise ApiserverLogError(f"line {number} is not JSON") from error
        if not isinstance(event, dict) or event.get("kind") != "Event":
            raise ApiserverLogError(f"line {number} is not an audit.k8s.io Event")
        if event.get("apiVersion") != "audit.k8s.io/v1":
            raise ApiserverLogError(
                f"line {number} is {event.get('apiVersion')}, not audit.k8s.io/v1"
            )
        audit_id = str(event.get("auditID", ""))
        seen = merged.setdefault(audit_id, {"annotations": {}})
        annotations = event.get("annotations") or {}
        seen["annotations"].update({str(k): str(v) for k, v in annotations.items()})
        seen.update({k: v for k, v in event.items() if k != "annotations"})
        if event.get("stage") in ("ResponseComplete", "Panic"):
            seen["completed"] = event.get("stageTimestamp")
    return [_event(audit_id, data) for audit_id, data in merged.items()]


def _event(audit_id: str, data: Mapping[str, Any]) -> ApiserverEvent:
    target = data.get("objectRef") or {}
    status = data.get("responseStatus") or {}
    code = status.get("code")
    when = data.get("requestReceivedTimestamp") or data.get("stageTimestamp")
    completed = data.get("completed")
    return ApiserverEvent(
        audit_id=audit_id,
        time=parse_time(str(when)),
        completed=parse_time(str(completed)) if completed else None,
        user=str((data.get("user") or {}).get("username", "")),
        groups=tuple(str(g) for g in (data.get("user") or {}).get("groups") or ()),
        verb=str(data.get("verb", "")),
        namespace=str(target.get("namespace", "")),
        resource=str(target.get("resource", "")),
        api_group=str(target.get("apiGroup", "")),
        subresource=str(target.get("subresource", "")),
        name=str(target.get("name", "")),
        code=code if isinstance(code, int) else None,
        annotations=data["annotations"],
    )


def is_protected(event: ApiserverEvent) -> bool:
    """The requests jitgate decides: connecting to a pod, deleting or scaling a workload."""
    if event.resource == "pods" and event.subresource in CONNECT:
        return True
    if event.resource in WORKLOADS and event.verb in ("delete", "deletecollection"):
        return not event.subresource
    return (
        event.resource in WORKLOADS
        and event.subresource == "scale"
        and event.verb
        in (
            "update",
            "patch",
        )
    )


@dataclass(frozen=True)
class Finding:
    kind: Kind
    message: str


@dataclass(frozen=True)
class Reconciliation:
    matched: int
    tries: int  # allowed records no event names, each an earlier try of a matched request
    findings: tuple[Finding, ...]
    since: dt.datetime | None
    until: dt.datetime | None


def reconcile(
    events: Iterable[ApiserverEvent],
    records: Iterable[Mapping[str, Any]],
    *,
    exempt: Iterable[str] = (),
    exempt_groups: Iterable[str] = (),
    namespaces: Iterable[str] = (),
) -> Reconciliation:
    """Match the API server's requests with jitgate's records both ways.

    `records` are stored jitgate records (any type, any writer); `exempt` users and members
    of `exempt_groups` act without jitgate (as the webhook's exemptions; `system:` users
    always);
    `namespaces`, if given, limit the unrecorded check to them.
    """
    events = list(events)
    scope = frozenset(namespaces)
    skip = frozenset(exempt)
    skip_groups = frozenset(exempt_groups)
    by_ref: dict[tuple[str, int], Mapping[str, Any]] = {}
    allowed: list[Mapping[str, Any]] = []
    for record in records:
        if isinstance(record.get("writer"), str) and isinstance(record.get("seq"), int):
            by_ref[record["writer"], record["seq"]] = record
            if record.get("type") == ALLOWED:
                allowed.append(record)
    findings: list[Finding] = []
    heard: set[str] = set()  # admission UIDs (or writer:seq) an event accounts for
    lifetimes: dict[tuple[Any, ...], list[tuple[dt.datetime, dt.datetime]]] = {}
    matched = 0
    for event in events:
        ref = event.record_ref()
        if ref is None:
            if (
                event.allowed
                and is_protected(event)
                and not event.user.startswith("system:")
                and event.user not in skip
                and not skip_groups.intersection(event.groups)
                and (not scope or event.namespace in scope)
            ):
                findings.append(
                    Finding(
                        "unrecorded",
                        f"{_time(event.time)} {event.what} (auditID {event.audit_id}): allowed "
                        "by the API server, and no jitgate record answers for it",
                    )
                )
            continue
        named = by_ref.get(ref)
        name = f"{ref[0]}:{ref[1]}"
        if named is None:
            findings.append(
                Finding(
                    "mismatched",
                    f"{_time(event.time)} {event.what} (auditID {event.audit_id}) names jitgate "
                    f"record {name}, which the log does not have",
                )
            )
            continue
        problem = _disagreement(event, named)
        if problem is not None:
            findings.append(Finding("mismatched", f"record {name}: {problem}"))
        heard.add(str(named.get("admissionUID") or name))
        matched += 1
        if (request := _retried_request(event, named)) is not None and event.completed:
            lifetimes.setdefault(request, []).append((event.time, event.completed))
    collections = {
        (event.user, event.namespace, event.resource)
        for event in events
        if event.allowed and event.verb == "deletecollection"
    }
    since = min((event.time for event in events), default=None)
    until = max((event.time for event in events), default=None)
    tries = 0
    for record in allowed:
        name = f"{record['writer']}:{record['seq']}"
        if str(record.get("admissionUID") or name) in heard:
            continue
        when = parse_time(str(record.get("time")))
        # Timed by two clocks (the webhook's, the API server's): compared at the second.
        second = whole_seconds(when)
        if any(
            whole_seconds(received) <= second <= whole_seconds(completed)
            for received, completed in lifetimes.get(_request(record), ())
        ):
            tries += 1
            continue
        # Only what the API server's log covers can be judged (times to the second).
        if since is None or until is None or not since.replace(microsecond=0) <= when <= until:
            continue
        action = record.get("action") or {}
        actor = record.get("actor") or {}
        if _collection_item(record, action, actor) in collections:
            continue
        findings.append(
            Finding(
                "unheard",
                f"{name} {_time(when)} action.allowed {actor.get('user')} "
                f"{action.get('verb')} {record.get('namespace')}/{action.get('name')}: no API "
                "server event names it (forged, or lost from the API server's log)",
            )
        )
    return Reconciliation(matched, tries, tuple(findings), since, until)


def _request(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the records of one user request's tries share: only the review uid, the time
    and the state each try was decided on (a scale's earlier count) differ."""
    action = record.get("action") or {}
    return (
        record.get("grant"),
        (record.get("actor") or {}).get("user"),
        record.get("namespace"),
        action.get("verb"),
        action.get("resource"),
        action.get("name"),
        record.get("dryRun"),
    )


def _retried_request(event: ApiserverEvent, named: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The request of `event` as its tries' records say it (`_request`), when the API server
    may have validated it more than once: an update or patch of a workload or its scale, a
    delete of one (RETRIED), by the user and on the object its named record says."""
    action = named.get("action") or {}
    plural, _, group = str(action.get("resource") or "").partition(".")
    if (
        RETRIED.get(event.verb) != action.get("verb")
        or event.resource not in WORKLOADS
        or event.subresource not in (("", "scale") if event.verb != "delete" else ("",))
        or (event.resource, event.api_group) != (plural, group)
        or (event.namespace, event.name) != (named.get("namespace"), action.get("name"))
        or event.user != (named.get("actor") or {}).get("user")
    ):
        return None
    return _request(named)


def _collection_item(
    record: Mapping[str, Any], action: Mapping[str, Any], actor: Mapping[str, Any]
) -> tuple[str, str, str] | None:
    """(user, namespace, plural) of a record decided as one item of a deletecollection."""
    if action.get("via") != "deletecollection":
        return None
    plural = str(action.get("resource") or "").split(".", 1)[0]  # events name no API group
    return str(actor.get("user")), str(record.get("namespace")), plural


def _disagreement(event: ApiserverEvent, record: Mapping[str, Any]) -> str | None:
    leaf = event.leaf()
    if leaf is not None and leaf != f"sha256:{record_leaf(record).hex()}":
        return f"its leaf hash is not the one the API server was told ({leaf})"
    user = (record.get("actor") or {}).get("user")
    if user != event.user:
        return f"it says user {user!r}, the API server {event.user!r}"
    if event.namespace and record.get("namespace") != event.namespace:
        return f"it says namespace {record.get('namespace')!r}, the API server {event.namespace!r}"
    return None


def _time(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
