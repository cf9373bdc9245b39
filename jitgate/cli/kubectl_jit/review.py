"""`kubectl jit list` and `kubectl jit show`: what is asked, by whom, and where it stands."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

from jitgate.cli import render
from jitgate.cli.errors import EXIT_OK, CliError, CommandFailed
from jitgate.cli.kubectl_jit.approver_queue import (
    Entry,
    deadline_key,
    governing,
    grant_length,
    may_decide,
    queue_header,
    queue_row,
)
from jitgate.cli.kubectl_jit.build import RequestError, parse_request
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, Me, open_session
from jitgate.cli.kubectl_jit.options import ListOptions, ShowOptions
from jitgate.cli.kubectl_jit.views import render_show, render_table, table_header, table_row
from jitgate.core import wire
from jitgate.core.api import AccessPolicy, AccessRequest
from jitgate.core.clock import SYSTEM_CLOCK, parse_time
from jitgate.core.durations import format_duration
from jitgate.core.next_steps import next_commands, recording_required


def parsed(raw: Json) -> AccessRequest:
    try:
        return parse_request(raw)
    except RequestError as error:
        raise CommandFailed(str(error)) from error


def _sort_key(raw: Json) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _readable(items: list[Json]) -> list[tuple[Json, AccessRequest]]:
    readable = []
    for raw in items:
        try:
            readable.append((raw, parse_request(raw)))
        except RequestError as error:
            # One malformed object must not hide every other request from an approver.
            sys.stderr.write(f"Warning: skipped {error}\n")
    return readable


def read_policies(requests: AccessRequests) -> list[AccessPolicy] | None:
    """The AccessPolicies that validate, or None where the caller may not read them."""
    raw_policies = requests.policies()
    if raw_policies is None:
        return None
    policies = (wire.read(AccessPolicy, raw) for raw in raw_policies)
    return [policy for policy in policies if isinstance(policy, AccessPolicy)]


def next_steps(request: AccessRequest, policies: Sequence[AccessPolicy] | None) -> list[str]:
    """The commands the request's grant allows, as its requester runs them: through the
    session gateway where a governing policy requires sessions to be recorded (where the
    caller may not read the policies, as plain kubectl: a direct exec refused for it names
    the command that works)."""
    names = request.status.policy_names
    return next_commands(request, recorded=recording_required(policies or (), names))


def _me(requests: AccessRequests) -> Me:
    me = requests.me()
    if me is None:
        user = requests.session.kubeconfig_user
        if not user:
            raise CommandFailed(
                "cannot tell who you are: the API server does not serve SelfSubjectReview "
                "and the kubeconfig names no user"
            )
        me = Me(user, ())
    return me


def _queue(
    requests: AccessRequests, listed: list[tuple[Json, AccessRequest]]
) -> list[tuple[Json, Entry]]:
    """The pending requests I may decide, soonest deadline first."""
    pending = [(raw, r) for raw, r in listed if r.status.phase in (None, "Pending")]
    policies = read_policies(requests) if pending else []
    if policies is None:
        sys.stderr.write(
            "Warning: you may not read AccessPolicies, so every pending request is listed, "
            "not only those you may decide.\n"
        )
        entries = [(raw, Entry(request, None)) for raw, request in pending]
    else:
        me = _me(requests)
        labels: dict[str, dict[str, str] | None] = {}
        entries = []
        for raw, request in pending:
            namespace = request.metadata.namespace or ""
            if not request.status.policy_names and namespace not in labels:
                labels[namespace] = requests.namespace_labels(namespace)
            found = governing(request, policies, labels.get(namespace))
            if found is not None and may_decide(request, found, me):
                entries.append((raw, Entry(request, found)))
    return sorted(entries, key=lambda pair: deadline_key(pair[1]))


def run_list(options: ListOptions) -> int:
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace = None if options.all_namespaces else session.namespace
    items = list(requests.list_requests(namespace).get("items") or [])
    items.sort(key=_sort_key)
    listed = _readable(items)
    if options.mine:
        me = _me(requests)
        listed = [
            (raw, r) for raw, r in listed if r.spec.requester and r.spec.requester.user == me.user
        ]
    queue = _queue(requests, listed) if options.pending else None
    shown = [raw for raw, _ in queue] if queue is not None else [raw for raw, _ in listed]
    if options.output == "json" or options.output == "yaml":
        listing = {"apiVersion": "v1", "kind": "List", "items": shown, "metadata": {}}
        sys.stdout.write(render.document(listing, options.output))
        return EXIT_OK
    if not shown:
        where = "" if namespace is None else f" in {namespace} namespace"
        which = (
            "pending access requests you may decide"
            if options.pending
            else "access requests of yours"
            if options.mine
            else "resources"
        )
        sys.stderr.write(f"No {which} found{where}.\n")
        return EXIT_OK
    now = SYSTEM_CLOCK.now()
    every = namespace is None
    if queue is not None:
        rows = [queue_header(with_namespace=every)]
        rows += [queue_row(entry, now, with_namespace=every) for _, entry in queue]
    else:
        wide = options.output == "wide"
        rows = [table_header(with_namespace=every, wide=wide)]
        rows += [table_row(r, now, with_namespace=every, wide=wide) for _, r in listed]
    sys.stdout.write(render_table(rows))
    return EXIT_OK


def described(requests: AccessRequests, request: AccessRequest) -> str:
    """`render_show` with the grant's real length: from the governing policy where the
    caller may read it, else from the grant's own window."""
    namespace = request.metadata.namespace or ""
    policies = read_policies(requests)
    labels = requests.namespace_labels(namespace) if request.status.policy is None else None
    policy = governing(request, policies, labels) if policies is not None else None
    duration = grant_length(request, policy) if policy is not None else None
    grant = request.status.grant
    if duration is None and grant is not None:
        start = ((requests.get_grant(namespace, grant.name) or {}).get("spec") or {}).get(
            "notBefore"
        )
        if isinstance(start, str):
            with contextlib.suppress(ValueError):
                duration = format_duration(grant.expires_at - parse_time(start))
    uses = None
    if grant is not None and request.spec.max_uses is not None:
        counted = ((requests.get_grant(namespace, grant.name) or {}).get("status") or {}).get(
            "uses"
        )
        uses = counted if isinstance(counted, int) else 0
    chain = extension_chain(requests, request) if _may_be_chained(request) else ()
    run = (
        next_steps(request, policies)
        if request.status.phase == "Approved" and grant is not None
        else ()
    )
    return render_show(
        request, SYSTEM_CLOCK.now(), duration=duration, chain=chain, uses=uses, run=run
    )


def _may_be_chained(request: AccessRequest) -> bool:
    """Only an extension, or an approved request (which one may extend), has a chain."""
    return request.spec.extends is not None or request.status.grant is not None


def extension_chain(requests: AccessRequests, request: AccessRequest) -> tuple[str, ...]:
    """The names of the requests chained by `spec.extends` through this one, first to last
    (one list of the namespace; a chain that loops or forks stops where it does)."""
    namespace = request.metadata.namespace or ""
    try:
        listing = requests.list_requests(namespace).get("items") or []
    except CliError:
        return ()  # the caller may not list requests there: no chain is shown
    extends = {
        str((item.get("metadata") or {}).get("name")): (
            (item.get("spec") or {}).get("extends") or {}
        ).get("name")
        for item in listing
        if isinstance(item, dict)
    }
    name = request.metadata.name or ""
    chain = [name]
    while (earlier := extends.get(chain[0])) and earlier not in chain:
        chain.insert(0, earlier)
    while True:
        later = sorted(n for n, e in extends.items() if e == chain[-1] and n not in chain)
        if not later:
            break
        chain.append(later[0])
    return tuple(chain)


def run_show(options: ShowOptions) -> int:
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    raw = requests.get(session.namespace, options.name)
    if options.output is not None:
        sys.stdout.write(render.document(raw, options.output))
    else:
        sys.stdout.write(described(requests, parsed(raw)))
    return EXIT_OK
