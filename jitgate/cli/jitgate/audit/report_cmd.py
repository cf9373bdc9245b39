"""`jitgate audit report`: the periodic access review, as tables in local time or JSON."""

from __future__ import annotations

import datetime as dt
import sys

from jitgate.audit.query import Selection
from jitgate.audit.report import BusinessHours, Report, ReportConfig, build_report
from jitgate.audit.timefmt import parse_span
from jitgate.cli import render
from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import ReportOptions
from jitgate.core.clock import SYSTEM_CLOCK, Clock


def run(options: ReportOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    now = clock.now()
    since = reading.when(options.since, "--since", now)
    until = reading.when(options.until, "--until", now) or now
    assert since is not None
    if until <= since:
        raise UsageError("--until must be later than --since")
    try:
        hours = BusinessHours.parse(options.business_hours, options.business_days, options.timezone)
        window = parse_span(options.burst_window)
    except ValueError as error:
        raise UsageError(str(error)) from error
    config = ReportConfig(
        since=since,
        until=until,
        hours=hours,
        repeat_threshold=options.repeat_threshold,
        burst_threshold=options.burst_threshold,
        burst_window=window,
    )
    progress = reading.Progress("reviewed")
    chosen = Selection(since=since, until=until, internal=True)
    with reading.opened(options.log) as reader:
        records = reading.records(options.log, reader, chosen, progress)
        report = build_report((stored.record for stored in records), config)
    progress.done()
    if options.output == "json":
        print(report.model_dump_json(indent=2))
    else:
        sys.stdout.write(report_text(report, hours))
    return EXIT_CHECK_FAILED if options.fail_on_findings and report.findings else EXIT_OK


def _local(text: str | None, hours: BusinessHours) -> str:
    if not text:
        return "-"
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(hours.zone)
    return when.strftime("%Y-%m-%d %H:%M %Z")


def report_text(report: Report, hours: BusinessHours) -> str:
    out = [
        f"Access review {report.since} to {report.until}; business hours {report.businessHours}; "
        f"{report.records} records.\n"
    ]
    out.append(f"\nREQUESTS ({len(report.requests)})\n")
    rows: list[tuple[str, ...]]
    header: tuple[str, ...]
    if report.requests:
        rows = [
            (
                _local(r.created, hours),
                f"{r.namespace}/{r.request}",
                r.requester or "-",
                "; ".join(r.actions) or "-",
                ", ".join(
                    f"{a.user} ({'approved' if a.decision == 'Approve' else a.decision.lower()}"
                    f"{': ' + repr(a.comment) if a.comment else ', no comment'})"
                    for a in r.approvals
                )
                or ("break-glass" if r.breakGlass else "-"),
                r.outcome + (" (break-glass)" if r.breakGlass else ""),
                r.grant or "-",
                str(r.uses),
            )
            for r in report.requests
        ]
        header = (
            "CREATED",
            "REQUEST",
            "REQUESTER",
            "ACTIONS",
            "APPROVALS",
            "OUTCOME",
            "GRANT",
            "USES",
        )
        out.append(render.table([header, *rows]))
    out.append(f"\nUSAGE ({len(report.usage)})\n")
    if report.usage:
        rows = [
            (
                u.user or "-",
                u.namespace or "-",
                u.grant or "(no grant)",
                "; ".join(u.actions),
                ", ".join(u.approvers) or "-",
                " ".join(filter(None, (u.ticket and f"[{u.ticket}]", u.reason))) or "-",
                str(u.uses),
                _local(u.first, hours),
                _local(u.last, hours),
            )
            for u in report.usage
        ]
        header = (
            "USER", "NAMESPACE", "GRANT", "ACTIONS", "APPROVED BY", "REASON", "USES", "FIRST",
            "LAST",
        )  # fmt: skip
        out.append(render.table([header, *rows]))
    out.append(f"\nFINDINGS ({len(report.findings)})\n")
    if report.findings:
        rows = [
            (f.kind, _local(f.time, hours), f.user or "-", f.namespace or "-", f.subject, f.detail)
            for f in report.findings
        ]
        header = ("FINDING", "TIME", "USER", "NAMESPACE", "SUBJECT", "DETAIL")
        out.append(render.table([header, *rows]))
    else:
        out.append("None.\n")
    return "".join(out)
