"""The gateway's marker on the streams it opens, and the webhook's check of it.

The gateway opens a user's exec, attach or port-forward through the API server as that user
(impersonated) and adds the user extra `jitgate.dev/session`: `v1:<session id>:<expiry>:<mac>`,
an HMAC-SHA256 with the session key (`--session-key`, a Secret only the webhook pods mount)
over the user, the action (verb, namespace, pod, container) and the session id and expiry. The
webhook then knows the stream is one the gateway relays and records; a marker that does not
verify is refused, whoever sent it (only holders of `impersonate` on `userextras` can send one
at all). A marker is good for opening one stream for `VALIDITY`; it is no grant: the webhook
still requires the live grant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EXTRA_KEY = "jitgate.dev/session"
VERSION = "v1"
VALIDITY = dt.timedelta(seconds=60)
MIN_KEY_BYTES = 32


class SessionKeyError(ValueError):
    """A session key file that cannot be used."""


def load_session_key(path: Path) -> bytes:
    """The key in `path` (raw bytes, surrounding whitespace ignored), at least 32 bytes."""
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise SessionKeyError(f"cannot read the session key {path}: {error.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise SessionKeyError(
            f"the session key {path} is shorter than {MIN_KEY_BYTES} bytes; "
            "make one with: head -c 32 /dev/urandom | base64"
        )
    return key


@dataclass(frozen=True)
class Stream:
    """What a marker is bound to: one user's stream to one container."""

    user: str
    verb: str  # exec | attach | portforward
    namespace: str
    pod: str
    container: str = ""


def _mac(key: bytes, stream: Stream, session: str, expires: int) -> str:
    message = "\n".join(
        (
            "jitgate session " + VERSION,
            stream.user,
            stream.verb,
            stream.namespace,
            stream.pod,
            stream.container,
            session,
            str(expires),
        )
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, stream: Stream, session: str, now: dt.datetime) -> str:
    """The marker value for `session`'s stream, good until `now + VALIDITY`."""
    expires = int((now + VALIDITY).timestamp())
    return f"{VERSION}:{session}:{expires}:{_mac(key, stream, session, expires)}"


@dataclass(frozen=True)
class Marked:
    """A marker that verified: the stream is the gateway's session `session`."""

    session: str


@dataclass(frozen=True)
class Forged:
    """A marker that did not verify, and why."""

    problem: str


def check(
    key: bytes | None,
    extra: Mapping[str, Sequence[str] | None] | None,
    stream: Stream,
    now: dt.datetime,
) -> Marked | Forged | None:
    """None without a marker; Marked when it verifies for `stream` at `now`; Forged otherwise
    (also when this webhook has no session key: nothing it could verify is believed)."""
    values = list((extra or {}).get(EXTRA_KEY) or ())
    if not values:
        return None
    if len(values) != 1:
        return Forged("more than one session marker")
    if key is None:
        return Forged("this webhook has no session key to check session markers with")
    parts = values[0].split(":")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
        return Forged("a session marker that is not one jitgate writes")
    _, session, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(key, stream, session, int(expires))):
        return Forged("a session marker whose signature does not match this stream")
    if int(expires) < now.timestamp():
        return Forged("an expired session marker")
    return Marked(session)
