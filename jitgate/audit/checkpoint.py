"""C2SP checkpoints (c2sp.org/tlog-checkpoint) and tlog proofs (c2sp.org/tlog-proof).

A checkpoint is the signed statement "the log `origin` has `size` records and their
Merkle tree has this root"; a tlog proof carries one record's inclusion proof together
with the checkpoint it leads to, so one record can be proven to anyone offline.

    jitgate.example.com/audit/webhook-0      origin: the key name, "/", the writer
    20852                                    tree size
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — jitgate.example.com/audit/webhook-0 Az3grlgt...

One Ed25519 key signs the checkpoints of every writer of a deployment: the origin names
the writer, and each checkpoint is signed under the key name equal to its origin (as
the spec recommends), so every key ID differs while one public key verifies them all.

Parsing is strict; pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Final

from jitgate.audit.merkle import HASH_SIZE, ProofError, verify_inclusion
from jitgate.audit.note import (
    NoteError,
    Signer,
    Verifier,
    check_key_name,
    check_text,
    open_note,
    sign_note,
)

PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
MAX_TREE_SIZE: Final = 2**63 - 1
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,18}")


class CheckpointError(ValueError):
    """A checkpoint or tlog proof that is malformed or does not verify."""


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_TREE_SIZE:
        raise CheckpointError(f"{what} {text!r} is not a decimal number without leading zeros")
    return int(text)


def _hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except ValueError as error:
        raise CheckpointError(f"{what} is not base64") from error
    if len(value) != HASH_SIZE or base64.b64encode(value).decode() != text:
        raise CheckpointError(f"{what} is not the base64 of a {HASH_SIZE}-byte hash")
    return value


def origin_of(key_name: str, writer: str) -> str:
    """The origin of `writer`'s log: the checkpoint key's name, a slash, the writer id."""
    return check_key_name(f"{key_name}/{writer}")


def writer_signer(signer: Signer, writer: str) -> Signer:
    """The deployment's key under the name of `writer`'s origin."""
    return Signer.from_private_key(origin_of(signer.name, writer), signer.private_key)


def writer_verifier(verifier: Verifier, writer: str) -> Verifier:
    """The deployment's public key under the name of `writer`'s origin."""
    return Verifier.from_public_key(origin_of(verifier.name, writer), verifier.public_key)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the note text of a checkpoint."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("a checkpoint origin is one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"a root hash is {HASH_SIZE} bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise CheckpointError("checkpoint extension lines are non-empty single lines")

    @property
    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        try:
            check_text(text)
        except NoteError as error:
            raise CheckpointError(str(error)) from error
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise CheckpointError(
                "a checkpoint is an origin, a tree size and a root hash, on non-empty lines"
            )
        origin, size, root, *extensions = lines
        return cls(origin, _decimal(size, "tree size"), _hash(root, "root hash"), tuple(extensions))

    def sign(self, signer: Signer) -> bytes:
        if signer.name != self.origin:
            raise CheckpointError(f"checkpoints of {self.origin} are signed under that name")
        return sign_note(self.text, [signer])


def open_checkpoint(data: bytes, origin: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint in `data` if it is `origin`'s and `verifier` signed it as `origin`."""
    if verifier.name != origin:
        raise CheckpointError(f"the key {verifier.name} does not sign for {origin}")
    try:
        note = open_note(data, [verifier])
    except NoteError as error:
        raise CheckpointError(f"the checkpoint of {origin} does not verify: {error}") from error
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is of {checkpoint.origin}, not of {origin}")
    return checkpoint


@dataclass(frozen=True)
class TlogProof:
    """One record's inclusion proof and the signed checkpoint it leads to."""

    index: int
    path: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, verbatim
    extra: bytes | None = None

    def render(self) -> bytes:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(node).decode() for node in self.path]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        head, separator, checkpoint = data.partition(b"\n\n")
        if not separator or not checkpoint:
            raise CheckpointError("a tlog proof ends with an empty line and a checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as error:
            raise CheckpointError("a tlog proof's header is ASCII") from error
        if lines[0] != PROOF_HEADER:
            raise CheckpointError(f"a tlog proof starts with {PROOF_HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            encoded = rest.pop(0)[len("extra ") :]
            try:
                extra = base64.b64decode(encoded, validate=True)
            except ValueError as error:
                raise CheckpointError("the extra data is not base64") from error
            if not extra or base64.b64encode(extra).decode() != encoded:
                raise CheckpointError("the extra data is not canonical, non-empty base64")
        if not rest or not rest[0].startswith("index "):
            raise CheckpointError("a tlog proof names the record's index")
        index = _decimal(rest.pop(0)[len("index ") :], "index")
        if len(rest) > 63:
            raise CheckpointError("an inclusion proof has at most 63 hashes")
        path = tuple(_hash(line, f"proof hash {n}") for n, line in enumerate(rest))
        return cls(index, path, checkpoint, extra)


def verify_tlog_proof(proof: TlogProof, leaf: bytes, origin: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint that `proof` shows `leaf` (a leaf hash) in, or CheckpointError."""
    checkpoint = open_checkpoint(proof.checkpoint, origin, verifier)
    try:
        verify_inclusion(leaf, proof.index, checkpoint.size, proof.path, checkpoint.root)
    except ProofError as error:
        raise CheckpointError(f"record {proof.index} is not proven: {error}") from error
    return checkpoint
