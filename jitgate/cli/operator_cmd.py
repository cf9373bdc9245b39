"""`jitgate operator`: drive AccessRequests and Grants through their lifecycle (kopf)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from jitgate.cli.options import (
    EXIT_OK,
    EXIT_USAGE,
    add_flag,
    add_writer_flags,
    check_audit_url,
    configure_logging,
    fail,
    sentence,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the operator that approves, grants and expires access",
        description="Watch AccessRequests and Grants: resolve policies, count approvals, issue "
        "and expire grants, write every transition to the audit log, post Events and "
        "optional notifications.",
    )
    add_writer_flags(
        parser, kubeconfig_help="kubeconfig to use (default: in-cluster, then $KUBECONFIG)"
    )
    scope = parser.add_mutually_exclusive_group()
    add_flag(
        scope,
        "--namespace",
        metavar="NS",
        action="append",
        default=[],
        help="serve only this namespace (repeatable)",
    )
    add_flag(
        scope, "--all-namespaces", action="store_true", help="serve every namespace (the default)"
    )
    peering = parser.add_mutually_exclusive_group()
    add_flag(
        peering,
        "--standalone",
        action="store_true",
        help="no peering: for development, never with two replicas",
    )
    add_flag(
        peering,
        "--peering",
        metavar="NAME",
        help="kopf peering object: one replica active at a time",
    )
    add_flag(
        parser,
        "--priority",
        metavar="N",
        type=int,
        default=0,
        help="peering priority; the highest is active",
    )
    add_flag(
        parser,
        "--liveness",
        metavar="URL",
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    add_flag(
        parser,
        "--metrics-port",
        metavar="PORT",
        type=int,
        help="serve Prometheus metrics on this port at /metrics",
    )
    add_flag(
        parser,
        "--metrics-host",
        metavar="HOST",
        default="0.0.0.0",
        help="address for --metrics-port",
    )
    add_flag(
        parser,
        "--retention",
        metavar="DURATION",
        default="168h",
        help="delete finished requests this long after they end (the audit log keeps them)",
    )
    add_flag(
        parser,
        "--notify-url",
        metavar="URL",
        help="POST to this URL when a request is created, approved, denied or expires",
    )
    add_flag(
        parser,
        "--notify-format",
        choices=("slack", "generic"),
        default="slack",
        help='slack: {"text": ...} for incoming webhooks; generic: a JSON object of facts',
    )
    add_flag(
        parser,
        "--poll-interval",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="how often deadlines are checked against the clock",
    )
    parser.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> Any:
    from jitgate.core.durations import DurationError, parse_duration
    from jitgate.operator.config import NotifyConfig, OperatorConfig

    if args.namespace and args.all_namespaces:
        fail("Use either --namespace or --all-namespaces, not both.")
    check_audit_url(args.audit)
    try:
        retention = parse_duration(args.retention)
    except DurationError as error:
        fail(sentence(f"--retention: {error}"))
    if args.poll_interval <= 0:
        fail("--poll-interval must be a positive number of seconds.")
    notify = None
    if args.notify_url:
        notify = NotifyConfig(url=args.notify_url, format=args.notify_format)
    return OperatorConfig(
        audit_url=args.audit,
        audit_key_file=Path(args.audit_key_file) if args.audit_key_file else None,
        writer_id=args.writer_id or "",
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        namespaces=tuple(dict.fromkeys(args.namespace)),
        standalone=args.standalone,
        peering=args.peering or None,
        priority=args.priority,
        liveness=args.liveness or None,
        retention=retention,
        notify=notify,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        poll_interval=args.poll_interval,
    )


def run(args: argparse.Namespace) -> int:
    from jitgate.audit.errors import AuditError
    from jitgate.operator.kube import CredentialsError
    from jitgate.operator.runtime import run as run_operator

    config = config_from(args)
    configure_logging(args.log_level)
    try:
        asyncio.run(run_operator(config))
    except (AuditError, CredentialsError) as error:
        fail(sentence(str(error)), EXIT_USAGE)
    except KeyboardInterrupt:
        pass
    return EXIT_OK
