"""Waiting for a request's decision (`request --wait`, `kubectl jit wait NAME`).

The request is watched until it is approved (its grant named) or ends otherwise. Each change
on the way is one line: Pending under which policy, each approval as it comes (so far of how
many, by whom). Approved prints the grant's window and the kubectl command to run next; every
other ending exits with its own code (`exits.EXIT_CODES`), and Ctrl-C says how to resume.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from jitgate.cli.errors import EXIT_INTERRUPTED, EXIT_OK, CommandFailed
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json
from jitgate.cli.kubectl_jit.exits import EXIT_TIMED_OUT, PHASE_EXITS, WaitEnded
from jitgate.cli.kubectl_jit.review import next_steps, parsed, read_policies
from jitgate.cli.kubectl_jit.views import approvers_so_far, ended_at, human_duration
from jitgate.core.api import AccessRequest
from jitgate.core.clock import SYSTEM_CLOCK, format_time, parse_time
from jitgate.core.durations import format_duration
from jitgate.core.policy import describe_policies

# A watch that keeps ending at once (a flaky proxy) must not spin: at most this many rounds.
_MAX_WATCH_ROUNDS = 10_000
_MIN_ROUND_SECONDS = 1.0


def resume_command(name: str, namespace: str) -> str:
    return f"kubectl jit wait {name} -n {namespace}"


def progress(request: AccessRequest) -> str | None:
    """The line that says where a request stands while it is waited on; None while the
    operator has not picked it up."""
    status = request.status
    if status.phase != "Pending":
        return None
    if len(status.policy_names) > 1 and status.message:
        # Each governing policy counts its own approvers: the operator's message says how far
        # each one is (a single count would be wrong).
        return f"Pending under {describe_policies(status.policy_names)}: {status.message}"
    approvers = approvers_so_far(request)
    required = status.required_approvals
    of = f" of {required}" if required is not None else ""
    named = [who for who in approvers if not who.startswith("#")]  # unstamped: no name
    by = f" ({', '.join(named)})" if named else ""
    line = f"Pending: {len(approvers)}{of} approvals so far{by}"
    if status.policy and not approvers:
        line = f"Pending under AccessPolicy {status.policy}: 0{of} approvals so far"
    if required is not None and len(approvers) < required:
        more = required - len(approvers)
        line += f"; waiting for {more} more"
    return line


class _Progress:
    """Prints each new progress line once."""

    def __init__(self) -> None:
        self._last: str | None = None

    def show(self, raw: Json) -> None:
        line = progress(parsed(raw))
        if line is not None and line != self._last:
            print(line, flush=True)
            self._last = line


def wait_for_decision(
    requests: AccessRequests, namespace: str, name: str, timeout: dt.timedelta
) -> int:
    """Watch the request until it is decided; exit 0 only when it was approved."""
    try:
        # Inside the try: a Ctrl-C right after the user sees this line still says how to resume.
        print(
            f"Waiting up to {format_duration(timeout)} for a decision on "
            f"accessrequest.jitgate.dev/{name}...",
            flush=True,
        )
        return _watch(requests, namespace, name, timeout)
    except KeyboardInterrupt:
        raise WaitEnded(
            f"interrupted while waiting; resume with: {resume_command(name, namespace)}",
            EXIT_INTERRUPTED,
        ) from None


def _watch(requests: AccessRequests, namespace: str, name: str, timeout: dt.timedelta) -> int:
    deadline = time.monotonic() + timeout.total_seconds()
    shown = _Progress()
    raw = requests.get(namespace, name)
    for _ in range(_MAX_WATCH_ROUNDS):
        shown.show(raw)
        if decided(raw):
            return _report(requests, raw)
        started = time.monotonic()
        version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        for event in requests.watch(namespace, name, version, deadline):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                break  # e.g. 410 Gone: read the object again and resume from there
            if kind == "BOOKMARK" or (obj.get("metadata") or {}).get("name") != name:
                continue
            if kind == "DELETED":
                raise CommandFailed(f'accessrequest "{name}" was deleted while waiting')
            raw = obj
            shown.show(raw)
            if decided(raw):
                return _report(requests, raw)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if time.monotonic() - started < _MIN_ROUND_SECONDS:
            time.sleep(min(_MIN_ROUND_SECONDS, remaining))
        raw = requests.get(namespace, name)  # events may have been lost between watches
    request = parsed(raw)
    if request.status.phase == "Approved":
        return _report(requests, raw)
    state = progress(request) or request.status.phase or "new (the operator has not seen it)"
    raise WaitEnded(
        f'timed out after {format_duration(timeout)} waiting for accessrequest "{name}"; '
        f"it is still {state[:1].lower() + state[1:]}; resume with: "
        f"{resume_command(name, namespace)}",
        EXIT_TIMED_OUT,
    )


def settle(
    requests: AccessRequests, raw: Json, seconds: float, done: Callable[[Json], bool]
) -> Json:
    """The request once `done` holds, or as it stands after `seconds` (the operator acts
    within a second or two of a decision)."""
    meta = raw.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    if done(raw):
        return raw
    deadline = time.monotonic() + seconds
    version = str(meta.get("resourceVersion") or "")
    for event in requests.watch(namespace, name, version, deadline):
        obj = event.get("object") or {}
        if event.get("type") in ("ADDED", "MODIFIED") and done(obj):
            return obj
    return requests.get(namespace, name)


def decided(raw: Json) -> bool:
    """Approved with its grant named, or ended otherwise."""
    status = raw.get("status") or {}
    phase = status.get("phase")
    # Approved counts once the grant is named, so the window can be printed.
    return (phase == "Approved" and bool(status.get("grant"))) or phase in PHASE_EXITS


def _report(requests: AccessRequests, raw: Json) -> int:
    request = parsed(raw)
    name, namespace = request.metadata.name or "", request.metadata.namespace or ""
    status = request.status
    if status.phase != "Approved":
        raise WaitEnded(_why_not(request), PHASE_EXITS.get(status.phase or "", 1))
    approvers = approvers_so_far(request)
    by = f" by {', '.join(approvers)}" if approvers else ""
    if request.spec.break_glass:
        by = " (break-glass: flagged for review)"
    print(f"accessrequest.jitgate.dev/{name} approved{by}")
    if status.grant is None:
        print("The operator has not issued the grant yet: kubectl jit show " + name)
        return EXIT_OK
    now = SYSTEM_CLOCK.now()
    expires = status.grant.expires_at
    left = f"{human_duration(expires - now)} left" if expires > now else "already ended"
    start = _not_before(requests, namespace, status.grant.name)
    window = f"from {format_time(start)} until" if start else "until"
    print(f"Grant {status.grant.name} is live {window} {format_time(expires)} ({left})")
    commands = next_steps(request, read_policies(requests))
    print("Run:" if len(commands) == 1 else "Run any of:")
    for line in commands:
        print(f"  {line}")
    return EXIT_OK


def _not_before(requests: AccessRequests, namespace: str, grant: str) -> dt.datetime | None:
    raw = requests.get_grant(namespace, grant)
    value = ((raw or {}).get("spec") or {}).get("notBefore")
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _why_not(request: AccessRequest) -> str:
    """`… was not approved: denied by bob: use the runbook`, in the operator's words if any."""
    name, status = request.metadata.name, request.status
    detail = status.message or (status.phase or "").lower()
    if not status.message and status.phase == "Denied":
        denial = next((a for a in reversed(status.approvals) if a.decision == "Deny"), None)
        if denial is not None:
            comment = f": {denial.comment}" if denial.comment else ""
            detail = f"denied by {denial.user or 'an approver'}{comment}"
    if status.grant is not None:
        # Approved once; its grant has ended since (revoked, or expired).
        detail = status.message or f"{(status.phase or '').lower()} at {_ended_at(request)}"
        return f'accessrequest "{name}" was approved, but its grant has ended: {detail}'
    if not status.message and status.phase == "Expired":
        detail = "it expired before enough approvers approved it"
    return f'accessrequest "{name}" was not approved: {detail}'


def _ended_at(request: AccessRequest) -> str:
    ended = ended_at(request)
    return format_time(ended) if ended is not None else "an unknown time"
