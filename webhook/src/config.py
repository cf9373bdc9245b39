"""How one webhook process is configured: listening address, TLS files, audit sink, exemptions,
the session gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jitgate.webhook.gateway.config import GatewayConfig

from jitgate.core.policy import Exemptions

DEFAULT_OPERATOR_USER = "system:serviceaccount:jitgate:jitgate-operator"
# The webhook's own identity: it counts the uses of limited Grants (status.uses), nothing else.
DEFAULT_WEBHOOK_USER = "system:serviceaccount:jitgate:jitgate-webhook"

# Besides the operator, only these may delete a Grant: the garbage collector revokes a grant by
# deleting the AccessRequest that owns it, and the namespace controller empties namespaces.
DEFAULT_GRANT_COLLECTORS: frozenset[str] = frozenset(
    {
        "system:kube-controller-manager",
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:serviceaccount:kube-system:namespace-controller",
    }
)


@dataclass(frozen=True)
class WebhookConfig:
    """Everything `jitgate webhook` needs; tests build one directly."""

    tls_cert: Path
    tls_key: Path
    audit_url: str
    host: str = "0.0.0.0"
    port: int = 8443
    kubeconfig: Path | None = None
    audit_key_file: Path | None = None
    checkpoint_key_file: Path | None = None
    witnesses: tuple[str, ...] = ()  # tlog-witness URLs that cosign the checkpoints
    witness_ca: Path | None = None  # checks the https:// witnesses' certificates
    # This replica as a witness of its peers' logs (`routers.witness`): its own cosigner key,
    # its own state, and the keys of the logs it witnesses besides its own deployment's.
    witness_key_file: Path | None = None
    witness_state: Path | None = None
    witness_log_keys: tuple[Path, ...] = ()
    # Only callers presenting a client certificate signed by this CA get decisions.
    client_ca: Path | None = None
    # The API server's trace ids name each review's user request (`jitgate.webhook.traces`).
    apiserver_traces: bool = False
    writer_id: str = "webhook"
    operator_user: str = DEFAULT_OPERATOR_USER
    webhook_user: str = DEFAULT_WEBHOOK_USER
    exemptions: Exemptions = field(default_factory=Exemptions)
    grant_collectors: frozenset[str] = DEFAULT_GRANT_COLLECTORS
    # How often at most the serving certificate's files are checked for rotation.
    tls_reload_interval: float = 10.0
    # Reviews decided at once; one that waits longer than queue_wait seconds for a slot is
    # denied at once as overloaded (never left to time out at the API server).
    max_in_flight: int = 64
    queue_wait: float = 2.0
    # Longest silence on a watch before it is re-opened from the last resourceVersion.
    watch_read_timeout: float = 300.0
    # The key of the session gateway's markers (`jitgate.webhook.gateway.marker`): without it
    # every marker is refused, so streams a policy requires recorded cannot open.
    session_key_file: Path | None = None
    # The session gateway on a port of its own (needs session_key_file).
    gateway: GatewayConfig | None = None
