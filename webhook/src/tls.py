"""A server TLS context that picks up a rotated certificate without a restart, and asks
callers for a client certificate when a client CA is configured.

cert-manager (or the kubelet updating a Secret volume) replaces the certificate and key files
in place. Each TLS handshake runs the SNI callback, which re-reads the files when their
identity changed (checked at most every `interval` seconds) and hands the handshake the
current context. A half-written pair that does not load keeps the previous certificate.

With a client CA (`--client-ca`) a client certificate is asked for but optional: the kubelet's
probes and Prometheus present none and still reach `/healthz`, `/readyz` and `/metrics`;
`jitgate.webhook.callers` refuses admission paths to connections without one. A certificate
that is presented but not signed by the CA fails the handshake itself; `on_refused` is told.

With `session_tickets=False` (the webhook) no TLS 1.3 session ticket is issued, so no such
session is resumed (`_load` says why).
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_Signature = tuple[tuple[int, int, int], ...]


def _signature(paths: tuple[Path, ...]) -> _Signature:
    stats = [os.stat(path) for path in paths]
    return tuple((stat.st_mtime_ns, stat.st_size, stat.st_ino) for stat in stats)


def _load(
    cert: Path, key: Path, client_ca: Path | None = None, *, session_tickets: bool = True
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A connection's client certificate is read once, after the handshake
    # (`jitgate.webhook.callers`): a TLS 1.2 renegotiation must not bring another one.
    context.options |= ssl.OP_NO_RENEGOTIATION
    if not session_tickets:
        # OpenSSL sends two TLS 1.3 tickets after every handshake, each a serialized,
        # encrypted session: ~9% of a new connection's instructions (callgrind), for callers
        # (the API server, kubelet probes, Prometheus: Go clients without a session cache)
        # that never resume one. Every connection is then a full handshake, its client
        # certificate checked each time.
        context.num_tickets = 0
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        # OpenSSL checks a presented certificate's chain and its clientAuth purpose.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=client_ca)
    return context


Refused = Callable[[ssl.SSLError], None]


def _watched(on_refused: Refused) -> type[ssl.SSLObject]:
    """asyncio drops failed handshakes silently; this TLS object reports each one first."""

    class WatchedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not a failure: the handshake waits for more bytes
            except ssl.SSLError as error:
                on_refused(error)
                raise

    return WatchedSSLObject


class ReloadingTLS:
    """Owns the listening context; `context` is what the server is given.

    A rotated client CA file is picked up like the serving certificate.
    """

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        client_ca: Path | None = None,
        interval: float = 10.0,
        on_reload: Callable[[], None] | None = None,
        on_refused: Refused | None = None,
        session_tickets: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = (Path(cert), Path(key)) + ((Path(client_ca),) if client_ca else ())
        self._interval = interval
        self._load = functools.partial(_load, *self._paths, session_tickets=session_tickets)
        self._on_reload = on_reload
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._signature = _signature(self._paths)
        self._current = self._load()  # fails loudly at start-up, unlike a reload
        self._checked = monotonic()
        self.context = self._load()
        self.context.sni_callback = self._on_handshake
        if on_refused is not None:
            self.context.sslobject_class = _watched(on_refused)

    @property
    def current(self) -> ssl.SSLContext:
        """The context serving new handshakes, after reloading the files if they changed."""
        self.maybe_reload()
        return self._current

    def maybe_reload(self) -> bool:
        now = self._monotonic()
        with self._lock:
            if now - self._checked < self._interval:
                return False
            self._checked = now
            try:
                signature = _signature(self._paths)
                if signature == self._signature:
                    return False
                context = self._load()
            except (OSError, ssl.SSLError) as error:
                logger.warning("Keeping the current serving certificate: %s", error)
                return False
            self._current, self._signature = context, signature
        logger.info("Reloaded the serving certificate from %s.", self._paths[0])
        if self._on_reload is not None:
            self._on_reload()
        return True

    def _on_handshake(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        sock.context = self.current
