"""`jitgate operator`: drive AccessRequests and Grants through their lifecycle (kopf)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jitgate.cli.errors import EXIT_OK, UsageError, needs_extra, sentence
from jitgate.cli.jitgate.server_flags import (
    add_writer_flags,
    check_audit_url,
    configure_logging,
    witness_ca,
    witness_urls,
)
from jitgate.cli.options import add_flag, command

if TYPE_CHECKING:
    from jitgate.operator.config import OperatorConfig, SlackConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the operator that approves, grants and expires access",
        description="Watch AccessRequests and Grants: resolve policies, count approvals, issue "
        "and expire grants, write every transition to the audit log, post Events and "
        "optional notifications.",
    )
    add_writer_flags(parser)
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
    slack = parser.add_argument_group(
        "Slack app (approve from Slack; README: Notifications)",
        "all of --slack-channel, the two secret files, --slack-users and the TLS pair, or none",
    )
    add_flag(slack, "--slack-channel", metavar="ID", help="channel requests are posted to")
    add_flag(
        slack, "--slack-bot-token-file", metavar="FILE", help="file holding the bot token (xoxb-…)"
    )
    add_flag(
        slack,
        "--slack-signing-secret-file",
        metavar="FILE",
        help="file holding the app's signing secret (clicks are verified with it)",
    )
    add_flag(
        slack,
        "--slack-users",
        metavar="FILE",
        help="YAML mapping of Slack user ids to Kubernetes users and groups",
    )
    add_flag(slack, "--slack-tls-cert", metavar="FILE", help="certificate of the click endpoint")
    add_flag(slack, "--slack-tls-key", metavar="FILE", help="its private key")
    add_flag(
        slack,
        "--slack-port",
        metavar="PORT",
        type=int,
        default=8444,
        help="HTTPS port of the click endpoint (POST /slack/interactions)",
    )
    add_flag(slack, "--slack-host", metavar="HOST", default="0.0.0.0", help="its address")
    add_flag(
        slack,
        "--slack-api-url",
        metavar="URL",
        default="https://slack.com/api/",
        help="Slack Web API base URL (tests point it at a local stub)",
    )
    add_flag(
        parser,
        "--poll-interval",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="how often deadlines are checked against the clock",
    )
    add_flag(
        parser,
        "--webhook-configuration",
        metavar="NAME",
        default="jitgate",
        help="the ValidatingWebhookConfiguration each AccessPolicy's Enforced condition is "
        "checked against (the chart's, by default)",
    )
    parser.set_defaults(handler=command(OperatorOptions, run))


@dataclass(frozen=True)
class OperatorOptions:
    audit: str
    audit_key_file: str | None
    checkpoint_key: str | None
    witness: tuple[str, ...]
    witness_ca: str | None
    writer_id: str
    kubeconfig: str | None
    log_level: str
    namespace: tuple[str, ...]
    all_namespaces: bool
    standalone: bool
    peering: str | None
    priority: int
    liveness: str | None
    metrics_port: int | None
    metrics_host: str
    retention: str
    notify_url: str | None
    notify_format: Literal["slack", "generic"]
    poll_interval: float
    webhook_configuration: str
    slack_channel: str | None = None
    slack_bot_token_file: str | None = None
    slack_signing_secret_file: str | None = None
    slack_users: str | None = None
    slack_tls_cert: str | None = None
    slack_tls_key: str | None = None
    slack_port: int = 8444
    slack_host: str = "0.0.0.0"
    slack_api_url: str = "https://slack.com/api/"


def slack_config(options: OperatorOptions) -> SlackConfig | None:
    """The Slack app's settings: all of the required flags, or none of them."""
    from jitgate.operator.config import SlackConfig

    required = {
        "--slack-channel": options.slack_channel,
        "--slack-bot-token-file": options.slack_bot_token_file,
        "--slack-signing-secret-file": options.slack_signing_secret_file,
        "--slack-users": options.slack_users,
        "--slack-tls-cert": options.slack_tls_cert,
        "--slack-tls-key": options.slack_tls_key,
    }
    given = [flag for flag, value in required.items() if value]
    if not given:
        return None
    missing = [flag for flag, value in required.items() if not value]
    if missing:
        raise UsageError(f"The Slack app also needs {', '.join(missing)}.")
    for flag in ("--slack-bot-token-file", "--slack-signing-secret-file", "--slack-users"):
        path = Path(str(required[flag]))
        if not path.is_file():
            raise UsageError(f"{flag}: no file {path}.")
    return SlackConfig(
        bot_token_file=Path(str(options.slack_bot_token_file)),
        signing_secret_file=Path(str(options.slack_signing_secret_file)),
        channel=str(options.slack_channel),
        users_file=Path(str(options.slack_users)),
        tls_cert=Path(str(options.slack_tls_cert)),
        tls_key=Path(str(options.slack_tls_key)),
        host=options.slack_host,
        port=options.slack_port,
        api_url=options.slack_api_url,
    )


def config_from(options: OperatorOptions) -> OperatorConfig:
    from jitgate.core.durations import DurationError, parse_duration
    from jitgate.operator.config import NotifyConfig, OperatorConfig

    if options.namespace and options.all_namespaces:
        raise UsageError("Use either --namespace or --all-namespaces, not both.")
    check_audit_url(options.audit)
    try:
        retention = parse_duration(options.retention)
    except DurationError as error:
        raise UsageError(sentence(f"--retention: {error}")) from error
    if options.poll_interval <= 0:
        raise UsageError("--poll-interval must be a positive number of seconds.")
    notify = None
    if options.notify_url:
        notify = NotifyConfig(url=options.notify_url, format=options.notify_format)
    return OperatorConfig(
        audit_url=options.audit,
        audit_key_file=Path(options.audit_key_file) if options.audit_key_file else None,
        checkpoint_key_file=Path(options.checkpoint_key) if options.checkpoint_key else None,
        witnesses=witness_urls(options.witness, options.checkpoint_key),
        witness_ca=witness_ca(options.witness_ca, options.witness),
        writer_id=options.writer_id or "",
        kubeconfig=Path(options.kubeconfig) if options.kubeconfig else None,
        namespaces=tuple(dict.fromkeys(options.namespace)),
        standalone=options.standalone,
        peering=options.peering or None,
        priority=options.priority,
        liveness=options.liveness or None,
        retention=retention,
        notify=notify,
        slack=slack_config(options),
        metrics_port=options.metrics_port,
        metrics_host=options.metrics_host,
        poll_interval=options.poll_interval,
        webhook_configuration=options.webhook_configuration,
    )


def run(options: OperatorOptions) -> int:
    from jitgate.audit.errors import AuditError
    from jitgate.kube import CredentialsError

    config = config_from(options)
    with needs_extra("server"):
        from jitgate.operator.runtime import run as run_operator
    configure_logging(options.log_level)
    try:
        asyncio.run(run_operator(config))
    except (AuditError, CredentialsError) as error:
        raise UsageError(sentence(str(error))) from error
    except KeyboardInterrupt:
        pass
    return EXIT_OK
