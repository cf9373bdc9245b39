"""`jitgate webhook`: the admission webhook, served over HTTPS by uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from typing import Any

from jitgate.cli.options import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_flag,
    add_writer_flags,
    check_audit_url,
    configure_logging,
    existing_file,
    fail,
    sentence,
)

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
    add_writer_flags(parser, kubeconfig_help="kubeconfig (default: in-cluster)")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jitgate.audit import default_writer_id
    from jitgate.audit.errors import AuditError
    from jitgate.core.policy import Exemptions
    from jitgate.webhook.config import DEFAULT_GRANT_COLLECTORS, WebhookConfig
    from jitgate.webhook.server import StartupError, serve

    configure_logging(args.log_level)
    check_audit_url(args.audit)
    cert = existing_file("--tls-cert", args.tls_cert)
    key = existing_file("--tls-key", args.tls_key)
    assert cert is not None and key is not None
    config = WebhookConfig(
        host=args.host,
        port=args.port,
        tls_cert=cert,
        tls_key=key,
        audit_url=args.audit,
        audit_key_file=existing_file("--audit-key-file", args.audit_key_file),
        writer_id=args.writer_id or default_writer_id(),
        kubeconfig=existing_file("--kubeconfig", args.kubeconfig),
        operator_user=args.operator_user,
        exemptions=Exemptions.with_defaults(tuple(args.exempt_user), tuple(args.exempt_group)),
        grant_collectors=(
            frozenset(args.grant_collector) if args.grant_collector else DEFAULT_GRANT_COLLECTORS
        ),
    )
    try:
        asyncio.run(serve(config))
    except StartupError as error:
        fail(sentence(str(error)), EXIT_CHECK_FAILED)
    except (AuditError, ssl.SSLError) as error:
        fail(sentence(f"the webhook could not start: {error}"), EXIT_CHECK_FAILED)
    return EXIT_OK
