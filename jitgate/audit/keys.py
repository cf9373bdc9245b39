"""The HMAC key that signs record hashes, read from a file (a mounted Secret)."""

from __future__ import annotations

import os
from pathlib import Path

from jitgate.audit.errors import AuditConfigError

MIN_KEY_BYTES = 16


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes without surrounding whitespace, so `echo` and editors do no harm."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise AuditConfigError(
            f"cannot read the key file {os.fspath(path)}: {error.strerror or error}"
        ) from error
    if len(key) < MIN_KEY_BYTES:
        raise AuditConfigError(
            f"the key file {os.fspath(path)} holds {len(key)} bytes; "
            f"an audit key needs at least {MIN_KEY_BYTES} (32 random bytes recommended)"
        )
    return key
