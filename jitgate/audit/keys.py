"""Audit keys: the HMAC key that signs record hashes (a mounted Secret), the Ed25519
checkpoint keys (the private one a writer signs with, the public one auditors use), and a
witness's cosigner key.
"""

from __future__ import annotations

import os
from pathlib import Path

from jitgate.audit.cosignature import Cosigner
from jitgate.audit.errors import AuditConfigError
from jitgate.audit.note import NoteError, Signer, Verifier

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


def load_checkpoint_key(path: str | os.PathLike[str]) -> Signer:
    """The Ed25519 key that signs checkpoints: a signer key string in a file (a Secret).

    `PRIVATE+KEY+<name>+<key ID>+<key>`, the format of golang.org/x/mod/sumdb/note; the
    name prefixes every writer's origin (`<name>/<writer>`).
    """
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise AuditConfigError(f"cannot read the checkpoint key file {os.fspath(path)}") from error
    try:
        return Signer.parse(text)
    except NoteError as error:
        raise AuditConfigError(
            f"the checkpoint key file {os.fspath(path)} holds no signer key: {error}"
        ) from error


def parse_verifier_key(vkey: str) -> Verifier:
    """The public key that checks checkpoints: `<name>+<key ID>+<key>`."""
    try:
        return Verifier.parse(vkey.strip())
    except NoteError as error:
        raise AuditConfigError(f"not a verifier key: {error}") from error


def load_witness_key(path: str | os.PathLike[str]) -> Cosigner:
    """A witness's Ed25519 cosigner key (`jitgate audit keygen NAME --witness`) from a file."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise AuditConfigError(f"cannot read the witness key file {os.fspath(path)}") from error
    try:
        return Cosigner.parse(text)
    except NoteError as error:
        raise AuditConfigError(
            f"{os.fspath(path)} holds no witness key (`jitgate audit keygen NAME --witness` "
            f"makes one): {error}"
        ) from error
