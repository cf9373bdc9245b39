"""How one operator process is configured: the command line, as data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jitgate.audit import default_writer_id

NotifyFormat = Literal["slack", "generic"]
DEFAULT_RETENTION = dt.timedelta(days=7)


@dataclass(frozen=True)
class NotifyConfig:
    url: str
    format: NotifyFormat = "slack"
    timeout: float = 5.0  # seconds per attempt
    attempts: int = 5
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    max_backoff: float = 30.0
    queue_size: int = 1000


@dataclass(frozen=True)
class SlackConfig:
    """The Slack app: interactive notifications and the signed interaction endpoint."""

    bot_token_file: Path  # xoxb-… token of the app's bot user (chat:write)
    signing_secret_file: Path  # the app's signing secret: interactions are checked with it
    channel: str  # channel id (C…) requests are posted to
    users_file: Path  # Slack user id → Kubernetes user and groups (the admin's mapping)
    tls_cert: Path  # the interaction endpoint serves HTTPS only
    tls_key: Path
    host: str = "0.0.0.0"
    port: int = 8444
    path: str = "/slack/interactions"
    api_url: str = "https://slack.com/api/"  # tests point it at a stub on 127.0.0.1
    timeout: float = 5.0  # seconds per Web API call
    queue_size: int = 1000


@dataclass(frozen=True)
class OperatorConfig:
    audit_url: str
    audit_key_file: Path | None = None
    checkpoint_key_file: Path | None = None
    witnesses: tuple[str, ...] = ()  # tlog-witness URLs that cosign the checkpoints
    witness_ca: Path | None = None  # checks the https:// witnesses' certificates
    writer_id: str = ""  # empty: `default_writer_id()`
    kubeconfig: Path | None = None
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    standalone: bool = False
    peering: str | None = None
    priority: int = 0  # with peering, the highest priority replica is the active one
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    retention: dt.timedelta = DEFAULT_RETENTION
    notify: NotifyConfig | None = None
    slack: SlackConfig | None = None
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"  # a pod's metrics are scraped from outside
    # How often daemons look at the clock: bounds expiry lag and how soon a test's
    # ManualClock advance is noticed.
    poll_interval: float = 1.0
    # False pins the resources and namespaces found at start-up (no CRD/namespace watching).
    dynamic_scanning: bool = True
    # The ValidatingWebhookConfiguration whose routing each AccessPolicy's `Enforced`
    # condition is checked against, and how often it is checked again (namespaces and the
    # configuration change without the policy changing).
    webhook_configuration: str = "jitgate"
    enforcement_interval: float = 30.0

    @property
    def writer(self) -> str:
        return self.writer_id or default_writer_id()
