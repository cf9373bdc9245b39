"""Who is heard (DESIGN.md §3): with `--client-ca`, only the API server gets decisions.

The API server presents the client certificate its admission configuration names; the
webhook's TLS context (`jitgate.webhook.tls`) asks every caller for one and checks a presented
certificate against the client CA. Then:

- a certificate the CA did not sign fails the TLS handshake (`Refusals.handshake_failed`);
- a connection with no certificate still reaches `/healthz`, `/readyz` and `/metrics` (the
  kubelet's probes and Prometheus have none), but a review on it is answered 403 with no
  decision and no audit record (`OnlyVerifiedCallers`).

Either way the caller is counted in `jitgate_webhook_refused_callers_total{reason}` and
logged at most once a minute per reason with the count since, so a flood can fill neither
the audit log nor the process log.

Without `--client-ca` anyone who reaches the port is answered, and every record the webhook
writes says `"caller": "unverified"`; with it, `"caller": "verified"` (`CALLER_VERIFIED`).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from jitgate.webhook.http1 import OneWriteProtocol, direct_answers, peer
from jitgate.webhook.metrics import Metrics
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

CALLER_VERIFIED: Final = "verified"
CALLER_UNVERIFIED: Final = "unverified"

ADMISSION_PATHS: Final = frozenset({"/validate", "/mutate"})
NO_CERTIFICATE: Final = "no-client-certificate"
UNTRUSTED_CERTIFICATE: Final = "untrusted-client-certificate"
NOT_TLS: Final = "tls-handshake-failed"
LOG_INTERVAL_S: Final = 60.0

_REASON_TEXT: Final = {
    NO_CERTIFICATE: "a review arrived without a client certificate",
    UNTRUSTED_CERTIFICATE: "a client certificate not signed by the client CA was refused",
    NOT_TLS: "a TLS handshake failed",
}


class Refusals:
    """Counts refused callers and logs them, rate-limited per reason.

    Called from the event loop (reviews) and from TLS handshakes (same loop, but through
    OpenSSL callbacks), so the bookkeeping takes a lock.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        interval: float = LOG_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counter = metrics.refused_callers
        self._interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def refuse(self, reason: str, detail: str = "") -> None:
        self._counter.labels(reason).inc()
        now = self._monotonic()
        with self._lock:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            last = self._last_logged.get(reason)
            if last is not None and now - last < self._interval:
                return
            count = self._unlogged.pop(reason)
            self._last_logged[reason] = now
        since = f" ({count} since the last line)" if count > 1 else ""
        logger.warning(
            "Refused a caller: %s%s; no decision, no audit record%s.",
            _REASON_TEXT[reason],
            f": {detail}" if detail else "",
            since,
        )

    def handshake_failed(self, error: ssl.SSLError) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self.refuse(UNTRUSTED_CERTIFICATE, error.verify_message)
        else:
            self.refuse(NOT_TLS, error.reason or type(error).__name__)


def client_certificate(scope: Scope) -> str | None:
    """The PEM client certificate the connection presented (checked by TLS), if any."""
    tls = scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or ()
    return next(iter(chain), None)


def caller_of(scope: Scope) -> str:
    """Who sent a request, as far as its connection tells: `verified` for a client certificate
    the CA signed (only the API server has one), otherwise the peer's address. Keys the
    decision memo, so a review uid replayed from elsewhere is never answered from it."""
    if client_certificate(scope) is not None:
        return CALLER_VERIFIED
    return peer(scope.get("client"))


class OnlyVerifiedCallers:
    """The ASGI app answering reviews only on connections that presented a client
    certificate; `app` is the app it guards."""

    def __init__(self, app: ASGIApp, refusals: Refusals) -> None:
        self.app = app
        self._refusals = refusals
        self._refused = json.dumps(
            {"error": "Only the API server may ask for decisions: present its client certificate."}
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] in ADMISSION_PATHS
            and client_certificate(scope) is None
        ):
            self._refusals.refuse(NO_CERTIFICATE, f"{scope['method']} {scope['path']}")
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": self._refused})
            return
        await self.app(scope, receive, send)


class TLSScopeProtocol(OneWriteProtocol):
    """The webhook's HTTP/1.1 protocol (`jitgate.webhook.http1`), adding the ASGI
    TLS extension to each request's scope (`scope["extensions"]["tls"]`: the client
    certificate the handshake verified).

    On a connection whose client certificate the handshake verified, reviews are answered
    directly, as the caller check would let them through (`CALLER_VERIFIED`, the same answer
    and record): it is read once, when the connection is made, because it cannot change
    afterwards (the handshake is over by then, TLS 1.3 has no renegotiation and the TLS
    context refuses TLS 1.2's, `jitgate.webhook.tls`). On any other connection every review
    goes through the check and is refused (`OnlyVerifiedCallers`).
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        tls = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        app = self.app
        self.direct = None
        if der and isinstance(app, OnlyVerifiedCallers):
            self.direct = direct_answers(app.app)
            self.caller = CALLER_VERIFIED

        async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await app(scope, receive, send)

        self.app = with_tls
