"""C2SP cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`): sign and check.

A cosignature is a note signature line on a checkpoint whose signature is a timestamp
and an Ed25519 signature over

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text>

It states: as of that time, this is the largest tree consistent with everything the
cosigner saw of the log. Witnesses (`witness`) cosign a writer's checkpoints, and each
writer timestamps its own checkpoints the same way, so a verifier learns how old a
checkpoint is from a signature, not from a file's mtime. Key IDs use type 0x04, so a
cosignature never verifies as a plain note signature nor the other way round (the
second line of a checkpoint is a decimal number, never `time ...`).

Keys are strings as for notes (`note`), with type 0x04:

    witness vkey   <name>+<hex key ID>+base64(0x04 || 32-byte public key)
    witness skey   PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 || 32-byte seed)

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jitgate.audit.note import (
    ED25519_SIGNATURE_SIZE,
    NoteError,
    Signature,
    check_key_name,
    check_text,
    format_skey,
    format_vkey,
    key_id,
    parse_note,
    parse_skey,
    parse_vkey,
    raw_public_key,
)

COSIGNATURE_V1: Final = 0x04
HEADER: Final = "cosignature/v1"
MAX_TIMESTAMP: Final = 2**63 - 1


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What a cosigner signs: the header, the time, the checkpoint's whole note text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    return f"{HEADER}\ntime {timestamp}\n{check_text(checkpoint_text)}".encode()


@dataclass(frozen=True)
class CosignatureVerifier:
    """A cosigner's public key: what a verifier's cosignature policy lists."""

    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> CosignatureVerifier:
        check_key_name(name)
        return cls(name, key_id(name, raw_public_key(public_key), COSIGNATURE_V1), public_key)

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        return cls(*parse_vkey(vkey.strip(), COSIGNATURE_V1))

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, COSIGNATURE_V1, self.public_key)

    def timestamp(self, checkpoint_text: str, signature: Signature) -> int | None:
        """The time `signature` cosigned the checkpoint at, None if it is not this key's.

        NoteError if it claims to be this key's and does not verify: per the signed-note
        spec, a bad signature by a trusted key refuses the whole note.
        """
        if signature.name != self.name or signature.key_id != self.key_id:
            return None
        blob = signature.signature
        if len(blob) != 8 + ED25519_SIGNATURE_SIZE:
            raise NoteError(f"the cosignature of {self.name} is not a timestamped signature")
        timestamp = int.from_bytes(blob[:8], "big")
        try:
            self.public_key.verify(blob[8:], signed_message(checkpoint_text, timestamp))
        except InvalidSignature as error:
            raise NoteError(f"invalid cosignature by {self.name}") from error
        return timestamp


@dataclass(frozen=True)
class Cosigner:
    """A private key that cosigns checkpoints: a witness's, or a writer's own."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey

    @classmethod
    def from_private_key(cls, name: str, private_key: Ed25519PrivateKey) -> Cosigner:
        check_key_name(name)
        public = raw_public_key(private_key.public_key())
        return cls(name, key_id(name, public, COSIGNATURE_V1), private_key)

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls.from_private_key(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        return cls(*parse_skey(skey.strip(), COSIGNATURE_V1))

    @property
    def skey(self) -> str:
        return format_skey(self.name, self.key_id, COSIGNATURE_V1, self.private_key)

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.key_id, self.private_key.public_key())

    def cosign(self, checkpoint_text: str, timestamp: int) -> Signature:
        signature = self.private_key.sign(signed_message(checkpoint_text, timestamp))
        return Signature(self.name, self.key_id, timestamp.to_bytes(8, "big") + signature)


def cosignatures(note: bytes, verifiers: Iterable[CosignatureVerifier]) -> dict[str, int]:
    """Each given cosigner (by vkey) that cosigned the note's text, with its newest time.

    Signatures by other keys are ignored; NoteError for a malformed note or a bad
    signature by one of `verifiers`.
    """
    parsed = parse_note(note)
    known = list(verifiers)
    found: dict[str, int] = {}
    for signature in parsed.signatures:
        for verifier in known:
            timestamp = verifier.timestamp(parsed.text, signature)
            if timestamp is not None:
                found[verifier.vkey] = max(timestamp, found.get(verifier.vkey, timestamp))
    return found


def add_signatures(note: bytes, lines: Iterable[Signature]) -> bytes:
    """The note with signature lines added (each once), the text left as it is."""
    parsed = parse_note(note)
    signatures = list(parsed.signatures)
    for line in lines:
        if line not in signatures:
            signatures.append(line)
    return type(parsed)(parsed.text, tuple(signatures)).render()
