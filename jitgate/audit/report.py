"""The periodic access review: who requested, approved and used what, and what stands out.

Pure: fed records in time order, returns a `Report`. Findings have stable `kind` names so
a pipeline can act on them:

- `outside-business-hours`   an allowed (not dry-run) action outside business hours
- `repeated-requests`        the same object requested again and again
- `approval-without-comment` an approval with no comment
- `break-glass-unreviewed`   a break-glass grant with no `grant.reviewed` record yet
- `denial-burst`             many denied actions for one user in a short window
- `audit-records-lost`       a writer found acknowledged records missing when it restarted
- `audit-records-unacknowledged` records a failed write left stored; they never happened
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from jitgate.audit.chain import RECOVERED
from jitgate.audit.model import AuditRecord
from jitgate.audit.query import approvers, describe_action

DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class BusinessHours:
    start: dt.time
    end: dt.time
    days: frozenset[int]
    zone: ZoneInfo

    @classmethod
    def parse(cls, hours: str, days: str, zone: str) -> BusinessHours:
        """`08:00-18:00`, `Mon-Fri` (or `Mon,Wed,Fri`), an IANA zone such as Europe/Berlin."""
        match = _HOURS.match(hours.strip())
        if match is None:
            raise ValueError(f"business hours {hours!r} must look like 08:00-18:00")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        try:
            start, end = dt.time(h1, m1), dt.time(h2, m2) if (h2, m2) != (24, 0) else dt.time.max
        except ValueError as error:
            raise ValueError(f"business hours {hours!r} are not valid times") from error
        if end <= start:
            raise ValueError(f"business hours {hours!r} must end after they start")
        try:
            tz = ZoneInfo(zone)
        except (ValueError, KeyError) as error:
            raise ValueError(f"{zone!r} is not a known time zone such as Europe/Berlin") from error
        return cls(start, end, _parse_days(days), tz)

    def contains(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.zone)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def describe(self) -> str:
        runs: list[list[int]] = []
        for day in sorted(self.days):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        days = ",".join(
            DAYS[run[0]] if len(run) == 1 else f"{DAYS[run[0]]}-{DAYS[run[-1]]}" for run in runs
        )
        end = "24:00" if self.end == dt.time.max else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end} {self.zone.key}"


def _parse_days(text: str) -> frozenset[int]:
    names = {name.lower(): index for index, name in enumerate(DAYS)}
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first.lower()[:3] not in names or (last and last.lower()[:3] not in names):
            raise ValueError(f"business days {text!r} must look like Mon-Fri or Mon,Wed,Fri")
        a, b = names[first.lower()[:3]], names[(last or first).lower()[:3]]
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


@dataclass(frozen=True)
class ReportConfig:
    since: dt.datetime
    until: dt.datetime
    hours: BusinessHours
    repeat_threshold: int = 3
    burst_threshold: int = 5
    burst_window: dt.timedelta = dt.timedelta(minutes=10)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApprovalSummary(_Model):
    user: str | None
    decision: str
    comment: str | None
    time: str


class RequestSummary(_Model):
    namespace: str | None
    request: str
    requester: str | None
    created: str | None
    reason: str | None
    actions: list[str]
    breakGlass: bool
    approvals: list[ApprovalSummary]
    outcome: str
    grant: str | None
    uses: int


class UsageSummary(_Model):
    user: str | None
    namespace: str | None
    grant: str | None
    request: str | None
    # Who approved the grant and why it was asked for: from the action records, or for logs
    # written before those carried them, from the request's own records in the window.
    approvers: list[str]
    reason: str | None
    ticket: str | None
    actions: list[str]
    uses: int
    first: str
    last: str


class Finding(_Model):
    kind: str
    time: str
    user: str | None
    namespace: str | None
    subject: str
    detail: str


class Report(_Model):
    since: str
    until: str
    businessHours: str
    records: int
    requests: list[RequestSummary]
    usage: list[UsageSummary]
    findings: list[Finding]


@dataclass
class _Request:
    namespace: str | None
    name: str
    requester: str | None = None
    created: str | None = None
    reason: str | None = None
    actions: list[str] = field(default_factory=list)
    objects: list[tuple[str, str, str]] = field(default_factory=list)
    break_glass: bool = False
    approvals: list[ApprovalSummary] = field(default_factory=list)
    outcome: str = "pending"
    grant: str | None = None


@dataclass
class _Burst:
    first: AuditRecord
    last: AuditRecord
    count: int

    def finding(self) -> Finding:
        namespaces = sorted({r.namespace for r in (self.first, self.last) if r.namespace})
        return Finding(
            kind="denial-burst",
            time=self.first.time,
            user=self.first.user,
            namespace=namespaces[0] if len(namespaces) == 1 else None,
            subject=self.first.user or "(unknown)",
            detail=f"{self.count} denied actions in {_minutes(self.last.when - self.first.when)}",
        )


@dataclass
class _Usage:
    user: str | None
    namespace: str | None
    grant: str | None
    request: str | None
    first: str
    last: str
    uses: int = 0
    actions: dict[str, None] = field(default_factory=dict)
    approvers: tuple[str, ...] = ()
    reason: str | None = None
    ticket: str | None = None


_OUTCOMES: Final = {
    "request.approved": "approved",
    "request.denied": "denied",
    "request.expired": "expired",
    "request.cancelled": "cancelled",
    "grant.revoked": "revoked",
    "grant.exhausted": "used up",
}


def _wire_action(action: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
    """A requested action from an AccessRequest spec: its text and the objects it names."""
    verb = str(action.get("verb", "?"))
    resource = str(action.get("resource") or "pods")
    names = [str(n) for n in action.get("names") or []]
    text = f"{verb} {resource}/{','.join(names) if names else '*'}"
    if action.get("container"):
        text += f" -c {action['container']}"
    return text, [(verb, resource, name) for name in names or ["*"]]


def _who(record: AuditRecord) -> str | None:
    return record.user


def _subject(namespace: str | None, name: str | None) -> str:
    return f"{namespace}/{name}" if namespace else str(name)


class _Builder:
    def __init__(self, config: ReportConfig) -> None:
        self.config = config
        self.records = 0
        self.requests: dict[tuple[str | None, str], _Request] = {}
        self.usage: dict[tuple[str | None, str | None, str | None], _Usage] = {}
        self.findings: list[Finding] = []
        self.break_glass: dict[tuple[str | None, str], AuditRecord] = {}
        self.reviewed: set[tuple[str | None, str]] = set()
        self.denials: dict[str, deque[AuditRecord]] = defaultdict(deque)
        self.bursts: dict[str, list[_Burst]] = defaultdict(list)

    def request(self, record: AuditRecord) -> _Request | None:
        if not record.request:
            return None
        key = (record.namespace, record.request)
        if key not in self.requests:
            self.requests[key] = _Request(record.namespace, record.request)
        return self.requests[key]

    def feed(self, record: AuditRecord) -> None:
        if not record.type.startswith("audit."):
            self.records += 1
        context = record.context or {}
        kind = record.type
        summary = self.request(record) if kind.startswith(("request.", "grant.")) else None
        if kind == "request.created" and summary is not None:
            summary.requester = _who(record) or _str(context.get("requester"))
            summary.created = record.time
            summary.reason = record.reason
            summary.break_glass = summary.break_glass or context.get("breakGlass") is True
            spec = context.get("spec")
            actions = spec.get("actions") if isinstance(spec, dict) else None
            for action in actions if isinstance(actions, list) else []:
                if isinstance(action, dict):
                    text, objects = _wire_action(action)
                    summary.actions.append(text)
                    summary.objects.extend(objects)
            if not summary.actions and record.action is not None:
                summary.actions.append(describe_action(record))
                asked = record.action
                summary.objects.append((asked.verb, asked.resource or "", asked.name or "*"))
        elif kind == "request.approval" and summary is not None:
            self.approval(record, summary, context)
        elif kind in _OUTCOMES and summary is not None:
            summary.outcome = _OUTCOMES[kind]
            if context.get("breakGlass") is True:
                summary.break_glass = True
        elif kind == "grant.created" and summary is not None:
            summary.grant = record.grant
            if context.get("breakGlass") is True and record.grant:
                summary.break_glass = True
                self.break_glass[(record.namespace, record.grant)] = record
        elif kind == "grant.reviewed" and record.grant:
            self.reviewed.add((record.namespace, record.grant))
        elif kind == "action.allowed" and not record.dry_run:
            self.used(record)
        elif kind == "action.denied" and not record.dry_run:
            self.denied(record)
        elif kind == RECOVERED:
            self.recovered(record, context)

    def approval(self, record: AuditRecord, summary: _Request, context: Mapping[str, Any]) -> None:
        decision = _str(context.get("decision")) or "Approve"
        comment = (record.reason or "").strip() or None
        summary.approvals.append(ApprovalSummary(
            user=_who(record), decision=decision, comment=comment, time=record.time
        ))  # fmt: skip
        if decision == "Approve" and comment is None:
            self.findings.append(
                Finding(
                    kind="approval-without-comment",
                    time=record.time,
                    user=_who(record),
                    namespace=record.namespace,
                    subject=_subject(record.namespace, record.request),
                    detail=f"{_who(record) or 'someone'} approved without a comment",
                )
            )

    def used(self, record: AuditRecord) -> None:
        context = record.context or {}
        key = (record.user, record.namespace, record.grant)
        usage = self.usage.get(key)
        if usage is None:
            usage = self.usage[key] = _Usage(
                record.user,
                record.namespace,
                record.grant,
                record.request,
                record.time,
                record.time,
                approvers=approvers(context),
                reason=record.reason,
                ticket=_str(context.get("ticket")),
            )
        usage.uses += 1
        usage.last = record.time
        usage.actions[describe_action(record)] = None
        if not self.config.hours.contains(record.when):
            local = record.when.astimezone(self.config.hours.zone)
            self.findings.append(
                Finding(
                    kind="outside-business-hours",
                    time=record.time,
                    user=record.user,
                    namespace=record.namespace,
                    subject=describe_action(record),
                    detail=f"at {local.strftime('%a %H:%M %Z')}"
                    + (f" under grant {record.grant}" if record.grant else "")
                    + (f" approved by {', '.join(usage.approvers)}" if usage.approvers else "")
                    + (f": {usage.reason}" if usage.reason else ""),
                )
            )

    def why(self, usage: _Usage) -> dict[str, Any]:
        """Approvers, reason and ticket of a grant's uses, from its request's records where
        the action records do not carry them."""
        asked = self.requests.get((usage.namespace, usage.request or ""))
        approved = (
            [a.user for a in asked.approvals if a.decision == "Approve" and a.user] if asked else []
        )
        return {
            "approvers": list(usage.approvers) or approved,
            "reason": usage.reason or (asked.reason if asked else None),
            "ticket": usage.ticket,
        }

    def denied(self, record: AuditRecord) -> None:
        user = record.user or "(unknown)"
        window = self.denials[user]
        window.append(record)
        while window and record.when - window[0].when > self.config.burst_window:
            window.popleft()
        bursts = self.bursts[user]
        if bursts and record.when - bursts[-1].last.when <= self.config.burst_window:
            bursts[-1].last = record  # the burst goes on
            bursts[-1].count += 1
        elif len(window) >= self.config.burst_threshold:
            bursts.append(_Burst(window[0], record, len(window)))

    def recovered(self, record: AuditRecord, context: Mapping[str, Any]) -> None:
        repaired = context.get("repaired")
        missing = repaired.get("missing") if isinstance(repaired, dict) else None
        if isinstance(missing, dict):
            self.findings.append(
                Finding(
                    kind="audit-records-lost",
                    time=record.time,
                    user=None,
                    namespace=None,
                    subject=f"writer {record.writer}",
                    detail=f"records seq {missing.get('from')}-{missing.get('to')} were "
                    "acknowledged but missing when the writer restarted",
                )
            )
        unacknowledged = context.get("unacknowledged")
        if isinstance(unacknowledged, dict):
            self.findings.append(
                Finding(
                    kind="audit-records-unacknowledged",
                    time=record.time,
                    user=None,
                    namespace=None,
                    subject=f"writer {record.writer}",
                    detail=f"records seq {unacknowledged.get('from')}-"
                    f"{unacknowledged.get('to')} were stored by a write that failed and were "
                    "never acknowledged: what they record did not happen",
                )
            )

    def finish(self) -> Report:
        config = self.config
        objects: dict[tuple[str | None, str, str, str], list[_Request]] = defaultdict(list)
        for summary in self.requests.values():
            if summary.created is not None:
                for verb, resource, name in summary.objects:
                    objects[(summary.namespace, verb, resource, name)].append(summary)
        for (namespace, verb, resource, name), asked in objects.items():
            if len(asked) >= config.repeat_threshold:
                users = sorted({a.requester or "?" for a in asked})
                self.findings.append(
                    Finding(
                        kind="repeated-requests",
                        time=asked[-1].created or "",
                        user=users[0] if len(users) == 1 else None,
                        namespace=namespace,
                        subject=f"{verb} {resource}/{name}",
                        detail=f"requested {len(asked)} times by {', '.join(users)}: "
                        + ", ".join(a.name for a in asked),
                    )
                )
        for (namespace, grant), record in self.break_glass.items():
            if (namespace, grant) not in self.reviewed:
                self.findings.append(
                    Finding(
                        kind="break-glass-unreviewed",
                        time=record.time,
                        user=_str((record.context or {}).get("user")) or record.user,
                        namespace=namespace,
                        subject=_subject(namespace, grant),
                        detail="break-glass grant awaiting review"
                        + (f" (request {record.request})" if record.request else ""),
                    )
                )
        for bursts in self.bursts.values():
            self.findings.extend(burst.finding() for burst in bursts)
        uses: dict[tuple[str | None, str | None], int] = defaultdict(int)
        for usage in self.usage.values():
            uses[(usage.namespace, usage.grant)] += usage.uses
        requests = [
            RequestSummary(
                namespace=s.namespace,
                request=s.name,
                requester=s.requester,
                created=s.created,
                reason=s.reason,
                actions=s.actions,
                breakGlass=s.break_glass,
                approvals=s.approvals,
                outcome=s.outcome,
                grant=s.grant,
                uses=uses.get((s.namespace, s.grant), 0) if s.grant else 0,
            )
            for s in sorted(self.requests.values(), key=lambda s: (s.created or "", s.name))
        ]
        usages = [
            UsageSummary(
                user=u.user,
                namespace=u.namespace,
                grant=u.grant,
                request=u.request,
                **self.why(u),
                actions=list(u.actions),
                uses=u.uses,
                first=u.first,
                last=u.last,
            )
            for u in sorted(self.usage.values(), key=lambda u: (u.first, u.user or ""))
        ]
        return Report(
            since=_fmt(config.since),
            until=_fmt(config.until),
            businessHours=config.hours.describe(),
            records=self.records,
            requests=requests,
            usage=usages,
            findings=sorted(self.findings, key=lambda f: (f.time, f.kind)),
        )


def _minutes(span: dt.timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return "under a minute" if minutes < 1 else f"{minutes} minute{'s' if minutes > 1 else ''}"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _fmt(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(records: Iterable[AuditRecord], config: ReportConfig) -> Report:
    """Records in time order (as readers return them) in; the review out."""
    builder = _Builder(config)
    for record in records:
        builder.feed(record)
    return builder.finish()
