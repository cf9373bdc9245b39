"""`jitgate webhook`: the admission webhook, served over HTTPS by uvicorn."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.cli.errors import EXIT_OK, CommandFailed, UsageError, needs_extra, sentence
from jitgate.cli.jitgate.server_flags import (
    add_writer_flags,
    check_audit_url,
    configure_logging,
    existing_file,
    witness_ca,
    witness_urls,
)
from jitgate.cli.options import add_flag, command

DEFAULT_PORT = 8443


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; use a number from 0 to 65535")
    return int(text)


def register(subparsers: Any) -> None:
    from jitgate.webhook.config import DEFAULT_OPERATOR_USER, DEFAULT_WEBHOOK_USER

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
        "--client-ca",
        metavar="FILE",
        help="answer reviews only from callers presenting a client certificate signed by this "
        "CA (the API server's, from its admission configuration); others get no decision and "
        "no record. Without it every record says its caller was not verified",
    )
    add_flag(
        parser,
        "--apiserver-traces",
        action="store_true",
        help="the kube-apiserver runs with a tracing configuration (--tracing-config-file; "
        "sampling rate 0 will do): take the trace id it sends with each review as the user "
        "request's, so the API server's several tries of one request are recorded once and "
        "count one use. Without such a configuration the API server passes on its clients' "
        "own trace ids: do not set it then",
    )
    add_writer_flags(parser)
    add_flag(
        parser,
        "--witness-key",
        metavar="FILE",
        help="witness the other writers' checkpoints with this key (`jitgate audit keygen NAME "
        "--witness`): serve C2SP tlog-witness POST /witness/add-checkpoint on this port for "
        "the logs of this deployment's --checkpoint-key (and --witness-log-key), never this "
        "replica's own; peers submit to it with --witness https://HOST:PORT/witness",
    )
    add_flag(
        parser,
        "--witness-state",
        metavar="DIR",
        help="where the witness keeps the latest checkpoint it cosigned of each log (its own "
        "storage: not the audit directory)",
    )
    add_flag(
        parser,
        "--witness-log-key",
        metavar="FILE",
        action="append",
        default=[],
        help="another deployment's checkpoint verifier key whose writers this witness cosigns "
        "(repeatable)",
    )
    add_flag(
        parser,
        "--operator-user",
        default=DEFAULT_OPERATOR_USER,
        help="the operator's user name: the only writer of Grants and AccessRequest status",
    )
    add_flag(
        parser,
        "--webhook-user",
        default=DEFAULT_WEBHOOK_USER,
        help="the webhook's own user name: it may count the uses of a Grant with maxUses "
        "(status.uses) and write nothing else",
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
        "--session-key",
        metavar="FILE",
        help="key (32 bytes or more) of the session gateway's markers: the gateway signs the "
        "streams it opens, the webhook checks them. Without it no marker is believed, so "
        "streams that a policy requires recorded (sessions.recording: Required) never open",
    )
    add_flag(
        parser,
        "--gateway-port",
        type=_port,
        default=None,
        help="serve the session gateway (the aggregated API sessions.jitgate.dev behind "
        "kubectl jit exec, attach and port-forward) on this port, with the same serving "
        "certificate; needs --session-key and --requestheader-client-ca",
    )
    add_flag(
        parser,
        "--requestheader-client-ca",
        metavar="FILE",
        help="the API server's front-proxy CA (its --requestheader-client-ca-file): the "
        "gateway believes the X-Remote-User headers only from a client certificate it signed",
    )
    add_flag(
        parser,
        "--requestheader-allowed-names",
        metavar="NAMES",
        default="",
        help="comma-separated common names of the API server's proxy client certificate "
        "(its --requestheader-allowed-names); empty: any certificate the CA signed",
    )
    add_flag(
        parser,
        "--gateway-max-sessions",
        type=_positive,
        default=200,
        help="sessions the gateway relays at once, in total",
    )
    add_flag(
        parser,
        "--gateway-max-sessions-per-user",
        type=_positive,
        default=5,
        help="sessions one user may have open at once",
    )
    add_flag(
        parser,
        "--gateway-max-frame-bytes",
        type=_positive,
        default=1024 * 1024,
        help="largest WebSocket message either side may send",
    )
    add_flag(
        parser,
        "--gateway-max-buffered-bytes",
        type=_positive,
        default=4 * 1024 * 1024,
        help="bytes held for a slow client before the pod is read no further",
    )
    add_flag(
        parser,
        "--gateway-max-unrecorded-bytes",
        type=_positive,
        default=1024 * 1024,
        help="bytes of a session not yet durable in the audit log before the session waits "
        "for the log (its recording buffer)",
    )
    add_flag(
        parser,
        "--gateway-max-session-bytes",
        type=_positive,
        default=256 * 1024 * 1024,
        help="the most one session may record (stdin, stdout and stderr together); then it is "
        "ended, the user told why",
    )
    add_flag(
        parser,
        "--gateway-drain-timeout-seconds",
        type=_positive,
        default=30,
        help="how long a client may take the rest of a session once the pod's side has ended; "
        "then it is dropped (session.terminated: client stopped reading)",
    )
    parser.set_defaults(handler=command(WebhookOptions, run))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}; use a whole number above 0")
    return int(text)


@dataclass(frozen=True)
class WebhookOptions:
    host: str
    port: int
    tls_cert: str
    tls_key: str
    client_ca: str | None
    audit: str
    audit_key_file: str | None
    checkpoint_key: str | None
    witness: tuple[str, ...]
    witness_ca: str | None
    witness_key: str | None
    witness_state: str | None
    witness_log_key: tuple[str, ...]
    writer_id: str
    kubeconfig: str | None
    log_level: str
    operator_user: str
    webhook_user: str
    exempt_user: tuple[str, ...]
    exempt_group: tuple[str, ...]
    grant_collector: tuple[str, ...] | None
    session_key: str | None
    gateway_port: int | None
    requestheader_client_ca: str | None
    requestheader_allowed_names: str
    apiserver_traces: bool
    gateway_max_sessions: int
    gateway_max_sessions_per_user: int
    gateway_max_frame_bytes: int
    gateway_max_buffered_bytes: int
    gateway_max_unrecorded_bytes: int
    gateway_max_session_bytes: int
    gateway_drain_timeout_seconds: int


def _peer_witness(options: WebhookOptions) -> dict[str, Any]:
    """The --witness-key, --witness-state and --witness-log-key settings, checked together."""
    if options.witness_key is None:
        if options.witness_state or options.witness_log_key:
            raise UsageError("--witness-state and --witness-log-key need --witness-key.")
        return {}
    if options.witness_state is None:
        raise UsageError("--witness-key needs --witness-state, where the witness keeps its state.")
    if not options.checkpoint_key and not options.witness_log_key:
        raise UsageError(
            "--witness-key needs the logs it witnesses: --checkpoint-key (this deployment's) "
            "or --witness-log-key."
        )
    return {
        "witness_key_file": existing_file("--witness-key", options.witness_key),
        "witness_state": Path(options.witness_state),
        "witness_log_keys": tuple(
            path
            for path in (existing_file("--witness-log-key", p) for p in options.witness_log_key)
            if path is not None
        ),
    }


def run(options: WebhookOptions) -> int:
    from jitgate.audit import default_writer_id
    from jitgate.audit.errors import AuditError
    from jitgate.core.policy import Exemptions
    from jitgate.webhook.config import DEFAULT_GRANT_COLLECTORS, WebhookConfig

    with needs_extra("server"):
        from jitgate.webhook.server import StartupError, run_webhook

    configure_logging(options.log_level)
    check_audit_url(options.audit)
    cert = existing_file("--tls-cert", options.tls_cert)
    key = existing_file("--tls-key", options.tls_key)
    assert cert is not None and key is not None
    gateway = None
    if options.gateway_port is not None:
        from jitgate.webhook.gateway.config import GatewayConfig

        if options.session_key is None or options.requestheader_client_ca is None:
            raise UsageError("--gateway-port needs --session-key and --requestheader-client-ca")
        front_proxy_ca = existing_file("--requestheader-client-ca", options.requestheader_client_ca)
        assert front_proxy_ca is not None
        gateway = GatewayConfig(
            port=options.gateway_port,
            requestheader_client_ca=front_proxy_ca,
            requestheader_allowed_names=frozenset(
                name.strip()
                for name in options.requestheader_allowed_names.split(",")
                if name.strip()
            ),
            max_sessions=options.gateway_max_sessions,
            max_sessions_per_user=options.gateway_max_sessions_per_user,
            max_frame_bytes=options.gateway_max_frame_bytes,
            max_buffered_bytes=options.gateway_max_buffered_bytes,
            max_unrecorded_bytes=options.gateway_max_unrecorded_bytes,
            max_session_bytes=options.gateway_max_session_bytes,
            drain_timeout=options.gateway_drain_timeout_seconds,
        )
    config = WebhookConfig(
        host=options.host,
        port=options.port,
        tls_cert=cert,
        tls_key=key,
        client_ca=existing_file("--client-ca", options.client_ca),
        apiserver_traces=options.apiserver_traces,
        audit_url=options.audit,
        audit_key_file=existing_file("--audit-key-file", options.audit_key_file),
        checkpoint_key_file=existing_file("--checkpoint-key", options.checkpoint_key),
        witnesses=witness_urls(options.witness, options.checkpoint_key),
        witness_ca=witness_ca(options.witness_ca, options.witness),
        **_peer_witness(options),
        writer_id=options.writer_id or default_writer_id(),
        kubeconfig=existing_file("--kubeconfig", options.kubeconfig),
        operator_user=options.operator_user,
        webhook_user=options.webhook_user,
        exemptions=Exemptions.with_defaults(options.exempt_user, options.exempt_group),
        grant_collectors=(
            frozenset(options.grant_collector)
            if options.grant_collector
            else DEFAULT_GRANT_COLLECTORS
        ),
        session_key_file=existing_file("--session-key", options.session_key),
        gateway=gateway,
    )
    try:
        run_webhook(config)
    except StartupError as error:
        raise CommandFailed(sentence(str(error))) from error
    except (AuditError, ssl.SSLError) as error:
        raise CommandFailed(sentence(f"the webhook could not start: {error}")) from error
    return EXIT_OK
