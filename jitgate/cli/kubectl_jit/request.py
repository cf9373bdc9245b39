"""`kubectl jit request …`: create an AccessRequest, and optionally wait for the decision."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from jitgate.cli.errors import EXIT_OK, CommandFailed, UsageError
from jitgate.cli.kubectl_jit.build import (
    RequestError,
    build_request,
    connect_action,
    creation_body,
    generated_name,
    object_actions,
    random_suffix,
)
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, open_session
from jitgate.cli.kubectl_jit.kinds import KindError, parse_targets
from jitgate.cli.kubectl_jit.options import RequestOptions
from jitgate.cli.kubectl_jit.review import parsed
from jitgate.cli.kubectl_jit.views import human_duration
from jitgate.core.api import AccessRequest, RequestedAction
from jitgate.core.clock import SYSTEM_CLOCK, format_time, parse_time
from jitgate.core.durations import format_duration
from jitgate.core.vocabulary import CONNECT_VERBS

_NAME_ATTEMPTS = 3
# A watch that keeps ending at once (a flaky proxy) must not spin: at most this many rounds.
_MAX_WATCH_ROUNDS = 10_000
_MIN_ROUND_SECONDS = 1.0


def actions_from(options: RequestOptions) -> list[RequestedAction]:
    """The requested actions, or a usage error naming what is wrong with the arguments."""
    try:
        if options.verb in CONNECT_VERBS:
            assert options.pod is not None  # the connect verbs' parsers require POD
            return [
                connect_action(options.verb, options.pod, options.container, options.exec_command)
            ]
        if options.exec_command:
            raise RequestError(f"a command after -- applies only to exec, not {options.verb}")
        return object_actions(options.verb, parse_targets(list(options.targets)))
    except (RequestError, KindError) as error:
        raise UsageError(str(error)) from error


def _body(
    options: RequestOptions, name: str, namespace: str, actions: Sequence[RequestedAction]
) -> Json:
    try:
        request = build_request(
            name=name,
            namespace=namespace,
            actions=actions,
            duration=options.duration,
            reason=options.reason,
            ticket=options.ticket,
            break_glass=options.break_glass,
        )
    except RequestError as error:
        raise UsageError(str(error)) from error
    return creation_body(request)


def run(options: RequestOptions) -> int:
    actions = actions_from(options)
    if not options.reason.strip():
        raise UsageError("--reason must say why the access is needed")
    _body(options, "placeholder", "default", actions)  # refuse bad input before any network call
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace = session.namespace
    user = None if options.name else requests.whoami() or session.kubeconfig_user or "user"
    for _ in range(_NAME_ATTEMPTS):
        name = options.name or generated_name(user or "user", actions[0], random_suffix())
        if requests.create(namespace, _body(options, name, namespace, actions)) is not None:
            break
        if options.name:
            raise CommandFailed(f'accessrequest "{name}" already exists in namespace "{namespace}"')
    else:
        raise CommandFailed("every generated name was taken; choose one with --name")
    print(f"accessrequest.jitgate.dev/{name} created")
    if options.break_glass:
        print(
            "Break-glass: the operator grants it at once if the policy lets you, "
            "and flags it for review."
        )
    else:
        print(f"Ask an approver to run: kubectl jit approve {name} -n {namespace}")
    if options.wait:
        return wait_for_decision(requests, namespace, name, options.timeout)
    return EXIT_OK


def wait_for_decision(
    requests: AccessRequests, namespace: str, name: str, timeout: dt.timedelta
) -> int:
    """Watch the request until it is decided; exit 0 only when it was approved."""
    print(
        f"Waiting up to {format_duration(timeout)} for a decision on "
        f"accessrequest.jitgate.dev/{name}...",
        flush=True,
    )
    deadline = time.monotonic() + timeout.total_seconds()
    raw = requests.get(namespace, name)
    for _ in range(_MAX_WATCH_ROUNDS):
        if _decided(raw):
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
            if _decided(raw):
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
    state = request.status.phase or "new (the jitgate operator has not picked it up)"
    raise CommandFailed(
        f'timed out after {format_duration(timeout)} waiting for accessrequest "{name}"; '
        f"it is still {state}"
    )


def _decided(raw: Json) -> bool:
    status = raw.get("status") or {}
    phase = status.get("phase")
    # Approved counts once the grant is named, so the window can be printed.
    return (phase == "Approved" and bool(status.get("grant"))) or phase in (
        "Denied",
        "Expired",
        "Revoked",
        "Cancelled",
    )


def _report(requests: AccessRequests, raw: Json) -> int:
    request = parsed(raw)
    name, namespace = request.metadata.name or "", request.metadata.namespace or ""
    status = request.status
    if status.phase != "Approved":
        raise CommandFailed(_why_not(request))
    approvers = [a.user for a in status.approvals if a.decision == "Approve" and a.user]
    by = f" by {', '.join(approvers)}" if approvers else ""
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
    if not status.message and status.phase == "Expired":
        detail = "it expired before enough approvers approved it"
    return f'accessrequest "{name}" was not approved: {detail}'
