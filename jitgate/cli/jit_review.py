"""`kubectl jit list` and `kubectl jit show`: what is asked, by whom, and where it stands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from jitgate.cli.jit_build import RequestError, parse_request
from jitgate.cli.jit_cluster import AccessRequests, CommandError, Json, open_session
from jitgate.cli.jit_format import render_show, render_table, table_header, table_row
from jitgate.cli.options import EXIT_OK
from jitgate.core.api import AccessRequest
from jitgate.core.clock import SYSTEM_CLOCK


def dump(value: Any, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(value, indent=4, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(value, sort_keys=False, allow_unicode=True))


def parsed(raw: Json) -> AccessRequest:
    try:
        return parse_request(raw)
    except RequestError as error:
        raise CommandError(str(error)) from error


def _sort_key(raw: Json) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def run_list(args: argparse.Namespace) -> int:
    session = open_session(args.kubeconfig, args.context, args.namespace)
    namespace = None if args.all_namespaces else session.namespace
    items = list(AccessRequests(session).list_requests(namespace).get("items") or [])
    items.sort(key=_sort_key)
    if args.pending:
        items = [raw for raw in items if (raw.get("status") or {}).get("phase") == "Pending"]
    if args.output in ("json", "yaml"):
        dump(
            {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}},
            args.output,
        )
        return EXIT_OK
    if not items:
        where = "" if namespace is None else f" in {namespace} namespace"
        which = "pending access requests" if args.pending else "resources"
        sys.stderr.write(f"No {which} found{where}.\n")
        return EXIT_OK
    now = SYSTEM_CLOCK.now()
    wide, every = args.output == "wide", namespace is None
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


def run_show(args: argparse.Namespace) -> int:
    session = open_session(args.kubeconfig, args.context, args.namespace)
    raw = AccessRequests(session).get(session.namespace, args.name)
    if args.output in ("json", "yaml"):
        dump(raw, args.output)
    else:
        sys.stdout.write(render_show(parsed(raw), SYSTEM_CLOCK.now()))
    return EXIT_OK
