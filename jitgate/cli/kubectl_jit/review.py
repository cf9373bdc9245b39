"""`kubectl jit list` and `kubectl jit show`: what is asked, by whom, and where it stands."""

from __future__ import annotations

import sys

from jitgate.cli import render
from jitgate.cli.errors import EXIT_OK, CommandFailed
from jitgate.cli.kubectl_jit.build import RequestError, parse_request
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, open_session
from jitgate.cli.kubectl_jit.options import ListOptions, ShowOptions
from jitgate.cli.kubectl_jit.views import render_show, render_table, table_header, table_row
from jitgate.core.api import AccessRequest
from jitgate.core.clock import SYSTEM_CLOCK


def parsed(raw: Json) -> AccessRequest:
    try:
        return parse_request(raw)
    except RequestError as error:
        raise CommandFailed(str(error)) from error


def _sort_key(raw: Json) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def run_list(options: ListOptions) -> int:
    session = open_session(options.cluster)
    namespace = None if options.all_namespaces else session.namespace
    items = list(AccessRequests(session).list_requests(namespace).get("items") or [])
    items.sort(key=_sort_key)
    if options.pending:
        items = [raw for raw in items if (raw.get("status") or {}).get("phase") == "Pending"]
    if options.output == "json" or options.output == "yaml":
        listing = {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}
        sys.stdout.write(render.document(listing, options.output))
        return EXIT_OK
    if not items:
        where = "" if namespace is None else f" in {namespace} namespace"
        which = "pending access requests" if options.pending else "resources"
        sys.stderr.write(f"No {which} found{where}.\n")
        return EXIT_OK
    now = SYSTEM_CLOCK.now()
    wide, every = options.output == "wide", namespace is None
    rows = [table_header(with_namespace=every, wide=wide)]
    for raw in items:
        try:
            request = parse_request(raw)
        except RequestError as error:
            # One malformed object must not hide every other request from an approver.
            sys.stderr.write(f"Warning: skipped {error}\n")
            continue
        rows.append(table_row(request, now, with_namespace=every, wide=wide))
    sys.stdout.write(render_table(rows))
    return EXIT_OK


def run_show(options: ShowOptions) -> int:
    session = open_session(options.cluster)
    raw = AccessRequests(session).get(session.namespace, options.name)
    if options.output is not None:
        sys.stdout.write(render.document(raw, options.output))
    else:
        sys.stdout.write(render_show(parsed(raw), SYSTEM_CLOCK.now()))
    return EXIT_OK
