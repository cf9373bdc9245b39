"""`jitgate webhook`: the admission webhook, served over HTTPS by uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from jitgate.cli.options import EXIT_CHECK_FAILED, EXIT_OK, add_flag, fail

DEFAULT_PORT = 8443


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; use a number from 0 to 65535")
    return int(text)


def register(subparsers: Any) -> None:
    from jitgate.webhook.config import DEFAULT_OPERATOR_USER

    parser = subparsers.add_parser(
        "webhook",
        help="run the admission webhook",
        description="Serve jitgate's validating and mutating admission webhook over HTTPS: "
        "POST /validate and /mutate, GET /healthz, /readyz and /metrics. The serving "
        "certificate is re-read when its files change.",
    )
    add_flag(parser, "--host", default="0.0.0.0", help="address to listen on")
    add_flag(parser, "--port", type=_port, default=DEFAULT_PORT, help="port to listen on")
    add_flag(parser, "--tls-cert", metavar="FILE", required=True, help="serving certificate (PEM)")
    add_flag(parser, "--tls-key", metavar="FILE", required=True, help="its private key (PEM)")
    add_flag(
        parser,
        "--audit",
        metavar="URL",
        required=True,
        help="audit log: file:///var/lib/jitgate/audit or postgresql://…",
    )
    add_flag(parser, "--audit-key-file", metavar="FILE", help="HMAC key for the records' mac")
    add_flag(
        parser,
        "--writer-id",
        default=os.environ.get("POD_NAME") or socket.gethostname(),
        help="this replica's audit chain name (default: $POD_NAME or the host name)",
    )
    add_flag(parser, "--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    add_flag(
        parser,
        "--operator-user",
        default=DEFAULT_OPERATOR_USER,
        help="the operator's user name: the only writer of Grants and AccessRequest status",
    )
    add_flag(
        parser,
        "--exempt-user",
        action="append",
        default=[],
        metavar="USER",
        help="never intercept this user (repeatable; added to the built-in exemptions)",
    )
    add_flag(
        parser,
        "--exempt-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="never intercept this group (repeatable; added to the built-in exemptions)",
    )
    add_flag(
        parser,
        "--grant-collector",
        action="append",
        default=None,
        metavar="USER",
        help="may delete Grants besides the operator (repeatable; default: the garbage "
        "collector and namespace controller)",
    )
    add_flag(
        parser,
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity",
    )
    parser.set_defaults(func=run)


def _file(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        fail(f"{flag} {value} is not a readable file.")
    return path


def run(args: argparse.Namespace) -> int:
    from jitgate.audit.errors import AuditError
    from jitgate.audit.url import parse_audit_url
    from jitgate.webhook.config import DEFAULT_GRANT_COLLECTORS, Exemptions, WebhookConfig
    from jitgate.webhook.server import StartupError, serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        parse_audit_url(args.audit)
    except AuditError as error:
        fail(f"--audit: {error}.")
    cert, key = _file("--tls-cert", args.tls_cert), _file("--tls-key", args.tls_key)
    assert cert is not None and key is not None
    config = WebhookConfig(
        host=args.host,
        port=args.port,
        tls_cert=cert,
        tls_key=key,
        audit_url=args.audit,
        audit_key_file=_file("--audit-key-file", args.audit_key_file),
        writer_id=args.writer_id,
        kubeconfig=_file("--kubeconfig", args.kubeconfig),
        operator_user=args.operator_user,
        exemptions=Exemptions.with_defaults(tuple(args.exempt_user), tuple(args.exempt_group)),
        grant_collectors=(
            frozenset(args.grant_collector) if args.grant_collector else DEFAULT_GRANT_COLLECTORS
        ),
    )
    try:
        asyncio.run(serve(config))
    except StartupError as error:
        fail(_sentence(str(error)), EXIT_CHECK_FAILED)
    except (AuditError, ssl.SSLError) as error:
        fail(_sentence(f"the webhook could not start: {error}"), EXIT_CHECK_FAILED)
    return EXIT_OK


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:].rstrip(".") + "."
