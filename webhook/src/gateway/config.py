"""How the session gateway is configured: where it listens, whom it believes, its bounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GatewayConfig:
    """`jitgate webhook --gateway-port ...`; tests build one directly."""

    port: int
    # The API server's front-proxy CA (its --requestheader-client-ca-file) and the common names
    # of its proxy client certificate (--requestheader-allowed-names; empty: any it signed).
    requestheader_client_ca: Path
    requestheader_allowed_names: frozenset[str] = frozenset()
    # Largest WebSocket message either side may send (kubectl sends at most 32 KiB of stdin).
    max_frame_bytes: int = 1024 * 1024
    max_sessions: int = 200
    max_sessions_per_user: int = 5
    # Bytes a session may hold for a slow client before it stops reading the pod.
    max_buffered_bytes: int = 4 * 1024 * 1024
    # Bytes of a session taken by the recorder but not yet durable in the log, before the
    # session waits for the log (its recording buffer; `SessionRecorder.max_unacked_bytes`).
    max_unrecorded_bytes: int = 1024 * 1024
    # The most one session may record in all (stdin, stdout and stderr); then it is ended
    # (`session.terminated`, `limit: ...`).
    max_session_bytes: int = 256 * 1024 * 1024
    # Seconds a client may take to read the rest once the pod's side has ended (or the session
    # is cut); then it is dropped and the session recorded as "client stopped reading".
    drain_timeout: float = 30.0
    # How often live sessions are checked against their grants and idle timeouts.
    check_interval: float = 1.0
    # Longest wait for the API server to open a stream to the pod.
    open_timeout: float = 30.0
