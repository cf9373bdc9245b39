"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: sign, parse, verify.

The envelope of a checkpoint: a text ending in a newline, a blank line, then signature
lines `— <key name> base64(key ID || signature)`. Keys are exchanged as strings, the
same ones golang.org/x/mod/sumdb/note and the transparency-dev tools use:

    verifier key  <name>+<hex key ID>+base64(0x01 || 32-byte public key)
    signer key    PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)

with key ID = SHA-256(name || "\\n" || 0x01 || public key)[:4]. Only the verifier key
is needed to check a note; the signer key never goes near the audit volume.

Parsing is strict (a malformed note is refused whole) and verification follows the
spec: signatures by unknown keys are ignored, a signature by a known key must verify or
the note is refused, and a note with no verified signature is refused. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519: Final = 0x01
ED25519_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
# The spec asks verifiers to accept at least 16; golang.org/x/mod/sumdb/note refuses over 100.
MAX_SIGNATURES: Final = 100
SIGNATURE_PREFIX: Final = "— "  # em dash, space
PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note, signature or key that is malformed, or a note that does not verify."""


class UnverifiedNoteError(NoteError):
    """A well-formed note with no signature by any of the given keys."""


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64, canonical only: one encoding per value, so no two notes alias."""
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise NoteError(f"{what} is not base64") from error
    if base64.b64encode(value).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return value


def check_key_name(name: str) -> str:
    if not name or "+" in name or any(char.isspace() for char in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    if any(ord(char) < 0x20 for char in name):
        raise NoteError(f"key name {name!r} holds a control character")
    return name


def key_id(name: str, public_key: bytes, signature_type: int = ED25519) -> int:
    material = name.encode() + b"\n" + bytes([signature_type]) + public_key
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big")


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: int
    signature: bytes  # after the 4-byte key ID

    @property
    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Verifier:
    """A public key that checks notes: what an auditor is given."""

    name: str
    key_id: int
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> Verifier:
        check_key_name(name)
        return cls(name, key_id(name, raw_public_key(public_key)), public_key)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """A verifier key string `<name>+<hex key ID>+<base64(0x01 || key)>`."""
        name, identifier, public_key = parse_vkey(vkey, ED25519)
        return cls(name, identifier, public_key)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, ED25519, self.public_key)

    def matches(self, signature: Signature) -> bool:
        return signature.name == self.name and signature.key_id == self.key_id

    def verifies(self, text: str, signature: Signature) -> bool:
        if not self.matches(signature) or len(signature.signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self.public_key.verify(signature.signature, text.encode())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes: the writer's checkpoint key."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls.from_private_key(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key(cls, name: str, private_key: Ed25519PrivateKey) -> Signer:
        check_key_name(name)
        return cls(name, key_id(name, raw_public_key(private_key.public_key())), private_key)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """A signer key string `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`."""
        name, _, private_key = parse_skey(skey, ED25519)
        return cls.from_private_key(name, private_key)

    @property
    def skey(self) -> str:
        return format_skey(self.name, self.key_id, ED25519, self.private_key)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.private_key.public_key())

    def sign(self, text: str) -> Signature:
        check_text(text)
        return Signature(self.name, self.key_id, self.private_key.sign(text.encode()))


def _parse_key_id(hex_id: str) -> int:
    if len(hex_id) != 8 or any(char not in "0123456789abcdef" for char in hex_id):
        raise NoteError(f"key ID {hex_id!r} is not 8 lowercase hex digits")
    return int(hex_id, 16)


def parse_vkey(vkey: str, signature_type: int) -> tuple[str, int, Ed25519PublicKey]:
    """Name, key ID and public key of `<name>+<hex key ID>+<base64(type || key)>`."""
    parts = vkey.split("+", 2)  # base64 may hold "+", a name may not
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<key ID>+<key>")
    name, hex_id, encoded = parts
    check_key_name(name)
    material = _b64decode(encoded, "the verifier key")
    if len(material) != 1 + ED25519_KEY_SIZE or material[0] != signature_type:
        raise NoteError(
            f"the verifier key is not an Ed25519 key of type 0x{signature_type:02x} (32 bytes)"
        )
    if key_id(name, material[1:], signature_type) != _parse_key_id(hex_id):
        raise NoteError(f"the verifier key's ID {hex_id} does not match its name and key")
    return name, _parse_key_id(hex_id), Ed25519PublicKey.from_public_bytes(material[1:])


def parse_skey(skey: str, signature_type: int) -> tuple[str, int, Ed25519PrivateKey]:
    """Name, key ID and private key of `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`."""
    if not skey.startswith(PRIVATE_KEY_PREFIX):
        raise NoteError("a signer key starts with PRIVATE+KEY+")
    parts = skey[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise NoteError("a signer key is PRIVATE+KEY+<name>+<key ID>+<key>")
    name, hex_id, encoded = parts
    check_key_name(name)
    material = _b64decode(encoded, "the signer key")
    if len(material) != 1 + ED25519_KEY_SIZE or material[0] != signature_type:
        raise NoteError(
            f"the signer key is not an Ed25519 key of type 0x{signature_type:02x} (32-byte seed)"
        )
    private_key = Ed25519PrivateKey.from_private_bytes(material[1:])
    if key_id(name, raw_public_key(private_key.public_key()), signature_type) != _parse_key_id(
        hex_id
    ):
        raise NoteError(f"the signer key's ID {hex_id} does not match its name and key")
    return name, _parse_key_id(hex_id), private_key


def format_vkey(
    name: str, identifier: int, signature_type: int, public_key: Ed25519PublicKey
) -> str:
    material = base64.b64encode(bytes([signature_type]) + raw_public_key(public_key)).decode()
    return f"{name}+{identifier:08x}+{material}"


def format_skey(
    name: str, identifier: int, signature_type: int, private_key: Ed25519PrivateKey
) -> str:
    seed = base64.b64encode(bytes([signature_type]) + private_key.private_bytes_raw()).decode()
    return f"{PRIVATE_KEY_PREFIX}{name}+{identifier:08x}+{seed}"


def check_text(text: str) -> str:
    """A note text: non-empty, ending in a newline, no control character but newline."""
    if not text.endswith("\n"):
        raise NoteError("a note text ends with a newline")
    if any(ord(char) < 0x20 and char != "\n" for char in text):
        raise NoteError("a note holds a control character")
    return text


@dataclass(frozen=True)
class Note:
    """A parsed note: its text and every signature line, none of them checked yet."""

    text: str
    signatures: tuple[Signature, ...]

    def render(self) -> bytes:
        check_text(self.text)
        return (self.text + "\n" + "".join(sig.line for sig in self.signatures)).encode()


@dataclass(frozen=True)
class VerifiedNote:
    """A note with at least one good signature by a trusted key."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _parse_signature(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"a signature line starts with an em dash and a space: {line!r}")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise NoteError(f"a signature line is '— <name> <signature>': {line!r}")
    name, encoded = parts
    check_key_name(name)
    blob = _b64decode(encoded, f"the signature of {name}")
    if len(blob) < 5:
        raise NoteError(f"the signature of {name} is too short")
    return Signature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def parse_note(data: bytes) -> Note:
    """Split a note into text and signature lines; NoteError if it is malformed."""
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoteError("a note is UTF-8") from error
    if any(ord(char) < 0x20 and char != "\n" for char in message):
        raise NoteError("a note holds a control character")
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("a note has a blank line between its text and its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("a note's last signature line ends with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note with more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature(line) for line in lines))


def open_note(data: bytes, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Parse and check a note against trusted keys, as c2sp.org/signed-note says.

    Signatures by keys not in `verifiers` are ignored (a witness's cosignature, an old
    key); one by a trusted key that fails refuses the whole note; so does a note that
    no trusted key signed (`UnverifiedNoteError`). Repeated lines count once.
    """
    note = parse_note(data)
    known = list(verifiers)
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for signature in note.signatures:
        matching = {
            (v.name, v.key_id, raw_public_key(v.public_key)): v
            for v in known
            if v.matches(signature)
        }
        if len(matching) > 1:
            raise NoteError(f"ambiguous key {signature.name}+{signature.key_id:08x}")
        if not matching:
            if signature not in unverified:
                unverified.append(signature)
            continue
        (verifier,) = matching.values()
        if not verifier.verifies(note.text, signature):
            raise NoteError(f"invalid signature for key {signature.name}+{signature.key_id:08x}")
        if signature not in verified:
            verified.append(signature)
    if not verified:
        raise UnverifiedNoteError("the note has no signature by a trusted key")
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """The note `text` signed by each of `signers`, ready to store or send."""
    if not signers:
        raise NoteError("a note needs at least one signature")
    return Note(text, tuple(signer.sign(text) for signer in signers)).render()
