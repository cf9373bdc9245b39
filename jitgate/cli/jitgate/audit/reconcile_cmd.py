"""`jitgate audit reconcile --apiserver-audit FILE`: jitgate's log against the API server's."""

from __future__ import annotations

import itertools
from pathlib import Path

from jitgate.audit.query import Selection
from jitgate.audit.reconcile import ApiserverLogError, parse_apiserver_log, reconcile
from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import ReconcileOptions
from jitgate.core.clock import format_time
from jitgate.core.policy import DEFAULT_EXEMPT_GROUPS, DEFAULT_EXEMPT_USERS

LABELS = {"unrecorded": "UNRECORDED", "unheard": "UNHEARD   ", "mismatched": "MISMATCHED"}


def run(options: ReconcileOptions) -> int:
    events = []
    for path in options.apiserver_audit:
        try:
            with Path(path).open("rb") as file:
                events += parse_apiserver_log(file)
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
        except ApiserverLogError as error:
            raise UsageError(f"{path} is not an API server audit log: {error}") from error
    with reading.opened(options.log) as reader:
        stored = reader.records(Selection(internal=True))
        result = reconcile(
            events,
            (record.data for record in stored),
            exempt=itertools.chain(DEFAULT_EXEMPT_USERS, options.exempt_user),
            exempt_groups=itertools.chain(DEFAULT_EXEMPT_GROUPS, options.exempt_group),
            namespaces=options.namespace,
        )
    for finding in result.findings:
        print(f"{LABELS[finding.kind]}  {finding.message}")
    window = (
        f" from {format_time(result.since)} to {format_time(result.until)}"
        if result.since and result.until
        else ""
    )
    # The API server's tries of a request that jitgate recorded too (each with a uid of its
    # own, the event naming one): accounted for by that request, counted, never a finding.
    tries = (
        f" ({result.tries} earlier {'try' if result.tries == 1 else 'tries'} of them recorded too)"
        if result.tries
        else ""
    )
    if result.findings:
        print(
            f"The logs DISAGREE: {len(result.findings)} finding(s), each named above; "
            f"{result.matched} allowed request(s) matched{tries}{window}."
        )
        return EXIT_CHECK_FAILED
    print(
        f"The logs agree: {result.matched} allowed request(s) matched both ways{tries}, "
        f"{len(events)} API server request(s) read{window}."
    )
    return EXIT_OK
