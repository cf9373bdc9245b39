"""Who is calling the gateway, as the API server's front proxy says, and only then.

The kube-aggregator proxies a user's request with the user in `X-Remote-User`, `X-Remote-Uid`
(Kubernetes 1.33 and later, or with the RemoteRequestHeaderUID feature), `X-Remote-Group` and
`X-Remote-Extra-<key>` headers (keys percent-encoded), over TLS with its proxy client
certificate (`--proxy-client-cert-file`); it replaces any such headers the user sent. Anyone
reaching the gateway's port could send those headers, so they are believed only when the
connection presented a certificate that the TLS handshake verified against the front-proxy CA
(`--requestheader-client-ca`) and whose common name is one of the allowed names
(`--requestheader-allowed-names`; empty allows any the CA signed, as the API server itself
does). A caller without it is refused before anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

USER_HEADER = "X-Remote-User"
UID_HEADER = "X-Remote-Uid"
GROUP_HEADER = "X-Remote-Group"
EXTRA_PREFIX = "X-Remote-Extra-"


class NotFromFrontProxy(Exception):
    """A call that did not come through the API server's front proxy; `status` is the HTTP
    status it is answered with (401: no certificate, 403: a certificate of someone else)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """The user the API server authenticated."""

    user: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uid: str | None = None


def common_name(peercert: Mapping[str, Any]) -> str | None:
    """The subject's common name of a certificate as `ssl.SSLSocket.getpeercert()` gives it."""
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def check_proxy_certificate(
    peercert: Mapping[str, Any] | None, allowed_names: frozenset[str]
) -> None:
    """Raise NotFromFrontProxy unless the TLS peer is the API server's front proxy.

    `peercert` is what the handshake verified against the front-proxy CA (None or empty: no
    certificate was presented)."""
    if not peercert:
        raise NotFromFrontProxy(
            401,
            "the session gateway answers only the Kubernetes API server's front proxy "
            "(no client certificate was presented); use kubectl jit exec, attach or port-forward",
        )
    name = common_name(peercert)
    if allowed_names and name not in allowed_names:
        raise NotFromFrontProxy(
            403,
            f"the session gateway does not accept the client certificate of {name!r}: it is not "
            "one of the API server's front-proxy names (--requestheader-allowed-names)",
        )


def caller_from_headers(headers: Iterable[tuple[str, str]]) -> Caller:
    """The caller the front proxy named; NotFromFrontProxy (401) when it named nobody."""
    user: list[str] = []
    uid: list[str] = []
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    prefix = EXTRA_PREFIX.lower()
    for name, value in headers:
        lowered = name.lower()
        if lowered == USER_HEADER.lower():
            user.append(value)
        elif lowered == UID_HEADER.lower():
            uid.append(value)
        elif lowered == GROUP_HEADER.lower():
            groups.append(value)
        elif lowered.startswith(prefix):
            extra.setdefault(unquote(lowered[len(prefix) :]), []).append(value)
    if len(user) != 1 or not user[0]:
        raise NotFromFrontProxy(401, "the API server's front proxy named no user")
    if len(uid) > 1:
        raise NotFromFrontProxy(401, "the API server's front proxy named more than one uid")
    return Caller(
        user[0],
        tuple(groups),
        {key: tuple(vs) for key, vs in extra.items()},
        uid[0] if uid and uid[0] else None,
    )
