"""A writer's chain as a transparency log: its leaves, tree state and public check.

Each writer's records, in seq order, are the leaves of one RFC 6962 tree: record `seq`
is leaf `seq - 1`. The leaf data is the record exactly as the writer stored it: its
canonical JSON line without the newline (`chain.stored_form`), `hash` and `mac` included:

    leaf hash = SHA-256(0x00 || stored line)

So the signed root covers every byte a writer wrote, the MAC too: any change to a stored
record changes its leaf, with or without the HMAC key. A verifier holding parsed records
re-encodes them canonically (what the writer wrote is canonical already), and checks
`hash` first, so an edit is named as such; an edit re-hashed and re-MAC'd by a key
holder still changes the leaves under the signed root.

One record is proven to someone without the log or a key by a C2SP tlog proof whose
extra data is the stored line itself (`prove_record`, `verify_record_proof`).

Every checkpoint a writer signs is kept in its history (`CheckpointLink`), linked to the
one before by a consistency proof; `verify_history` checks the links with the public key.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jitgate.audit.chain import Linked, record_hash, stored_form
from jitgate.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    TlogProof,
    open_checkpoint,
    origin_of,
    verify_tlog_proof,
    writer_verifier,
)
from jitgate.audit.cosignature import CosignatureVerifier, cosignatures
from jitgate.audit.merkle import (
    CompactTree,
    ProofError,
    inclusion_proof_from,
    leaf_hash,
    verify_consistency,
)
from jitgate.audit.note import NoteError, Verifier, parse_note


def record_leaf(record: Mapping[str, Any]) -> bytes:
    """The leaf hash of a stored record, as read back (ValueError if JSON cannot hold it)."""
    return leaf_hash(stored_form(record))


def linked_leaf(linked: Linked) -> bytes:
    """The leaf hash of a record just chained: the same as `record_leaf`, from its line."""
    return leaf_hash(linked.line.removesuffix(b"\n"))


def tree_state(tree: CompactTree) -> dict[str, Any]:
    """A tree state as JSON: size, the perfect subtrees' roots, and the root."""
    return {
        "size": tree.size,
        "peaks": [base64.b64encode(peak).decode() for peak in tree.peaks],
        "root": base64.b64encode(tree.root()).decode(),
    }


def tree_from_state(state: object) -> CompactTree:
    """The tree of a `tree_state`; ValueError unless it is whole and consistent."""
    if not isinstance(state, dict) or type(state.get("size")) is not int:
        raise ValueError("not a tree state")
    peaks = state.get("peaks")
    if not isinstance(peaks, list) or not all(isinstance(peak, str) for peak in peaks):
        raise ValueError("not a tree state")
    tree = CompactTree(state["size"], [base64.b64decode(peak, validate=True) for peak in peaks])
    if base64.b64encode(tree.root()).decode() != state.get("root"):
        raise ValueError("the tree state's root does not match its subtrees")
    return tree


def encode_tree(tree: CompactTree) -> bytes:
    """The writer's saved tree state (`tree_state`), one JSON line."""
    return json.dumps(tree_state(tree), sort_keys=True).encode() + b"\n"


def decode_tree(data: bytes) -> CompactTree:
    """The tree state saved by `encode_tree`; ValueError unless it is whole and consistent."""
    return tree_from_state(json.loads(data))


@dataclass(frozen=True)
class CheckpointCheck:
    """What checking a writer's records against its signed checkpoint found."""

    writer: str
    checkpoint: Checkpoint | None
    records: int  # the last seq read: records read, and those pruned before them
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def uncovered(self) -> int:
        """Records newer than the checkpoint: stored, not yet signed for."""
        return max(0, self.records - self.checkpoint.size) if self.checkpoint else self.records


class LeafTree:
    """A writer's Merkle tree built as its records are read, once, up to a checkpoint's size.

    Fed `(seq, leaf)` for each record in chain order (what `verify.verify_chain` reports
    through `on_record`), it keeps the root at `size` records and counts the rest, so the
    chain and the public check need one pass over the log, not two. `whole` says whether it
    saw every record from seq 1 on (or from the end of a pruned prefix, `start`: its tree
    state, from the pruning record), each with its leaf: only then does the root say anything.
    Where the log starts is known only once its first record is read: `pruned` are the tree
    states of prefixes it may have been pruned to, the one the first record continues is
    taken then.
    """

    def __init__(
        self, size: int, start: CompactTree | None = None, pruned: Iterable[CompactTree] = ()
    ) -> None:
        self.size = size
        self.whole = True
        self._pruned = {tree.size: tree for tree in pruned}
        self._begin(start)

    def _begin(self, start: CompactTree | None) -> None:
        self.start = start.size if start else 0
        self.records = self.start
        self._tree = start.copy() if start else CompactTree()
        self.root: bytes | None = self._tree.root() if self.size == self.start else None

    def first(self, seq: int) -> None:
        """The log's first record is `seq`: start from the prefix pruned before it, if known."""
        if self.records == 0 and seq - 1 in self._pruned:
            self._begin(self._pruned.pop(seq - 1))

    def add(self, seq: int, leaf: bytes | None) -> None:
        """The next record; its leaf is needed only up to `size`."""
        self.first(seq)
        self.records += 1
        if seq != self.records:
            self.whole = False
        elif self.records <= self.size and self.whole:
            if leaf is None:
                self.whole = False
                return
            self._tree.append(leaf)
            if self.records == self.size:
                self.root = self._tree.root()


def verify_checkpoint(
    writer: str,
    records: Iterable[Mapping[str, Any]],
    signed_checkpoint: bytes,
    verifier: Verifier,
    start: CompactTree | None = None,
    pruned: Iterable[CompactTree] = (),
) -> CheckpointCheck:
    """Check `writer`'s records (in seq order, from seq 1) against its signed checkpoint.

    Needs only the deployment's public key (`verifier`, a vkey whose name is the origin
    prefix): the checkpoint must be signed for `writer`'s origin, the records must hash
    to what their `hash` says, and the first `size` of them must have the signed root.
    Records past the checkpoint are counted, not judged (the next checkpoint covers them).
    After pruning, `start` is the pruned prefix's tree state and the records follow it, or
    the first record read picks it among `pruned` (as `LeafTree` does).
    """
    checkpoint = _opened(writer, signed_checkpoint, verifier)
    if isinstance(checkpoint, CheckpointCheck):
        return checkpoint
    leaves = LeafTree(checkpoint.size, start, pruned)
    for record in records:
        if type(record.get("seq")) is int:
            leaves.first(record["seq"])
        count = leaves.records + 1
        if count <= checkpoint.size:
            where = f"record {count} of writer {writer}"
            if record.get("writer") != writer or record.get("seq") != count:
                return CheckpointCheck(
                    writer, checkpoint, count, f"{where} is missing or out of place: found "
                    f"seq {record.get('seq')!r} of writer {record.get('writer')!r}"
                )  # fmt: skip
            if record_hash(record) != record.get("hash"):
                return CheckpointCheck(writer, checkpoint, count, f"{where} was edited")
            leaves.add(count, record_leaf(record))
        else:
            leaves.add(count, None)
    return _judged(writer, checkpoint, leaves)


def verify_checkpoint_leaves(
    writer: str, leaves: LeafTree, signed_checkpoint: bytes, verifier: Verifier
) -> CheckpointCheck:
    """`verify_checkpoint` for records already checked in chain order and fed to `leaves`
    (a whole chain from seq 1: `leaves.whole`), sized for this checkpoint."""
    checkpoint = _opened(writer, signed_checkpoint, verifier)
    if isinstance(checkpoint, CheckpointCheck):
        return checkpoint
    if not leaves.whole or leaves.size != checkpoint.size:
        raise ValueError("the leaves were not built from seq 1 for this checkpoint")
    return _judged(writer, checkpoint, leaves)


def _opened(writer: str, signed: bytes, verifier: Verifier) -> Checkpoint | CheckpointCheck:
    origin = origin_of(verifier.name, writer)
    try:
        return open_checkpoint(signed, origin, writer_verifier(verifier, writer))
    except CheckpointError as error:
        return CheckpointCheck(writer, None, 0, str(error))


def _judged(writer: str, checkpoint: Checkpoint, leaves: LeafTree) -> CheckpointCheck:
    count = leaves.records
    if leaves.start > checkpoint.size:
        return CheckpointCheck(
            writer,
            checkpoint,
            count,
            f"the latest checkpoint of writer {writer} covers {checkpoint.size} records, fewer "
            f"than the {leaves.start} pruned before its first record kept",
        )
    if count < checkpoint.size:
        return CheckpointCheck(
            writer,
            checkpoint,
            count,
            f"the signed checkpoint covers {checkpoint.size} records of writer {writer}, "
            f"the log holds {count}: records {count + 1}-{checkpoint.size} are gone",
        )
    if leaves.root != checkpoint.root:
        return CheckpointCheck(
            writer,
            checkpoint,
            count,
            f"records {leaves.start + 1}-{checkpoint.size} of writer {writer} are not the ones "
            "the checkpoint signed: history was rewritten",
        )
    return CheckpointCheck(writer, checkpoint, count, None)


def prove_record(
    records: Sequence[Mapping[str, Any]],
    seq: int,
    signed_checkpoint: bytes,
    start: CompactTree | None = None,
) -> TlogProof:
    """A tlog proof that record `seq` of a writer is under its signed checkpoint.

    `records` are the writer's, in seq order from seq 1 (or, after pruning, from the end
    of the pruned prefix whose tree state is `start`), at least up to the checkpoint's
    size; the record's stored line rides along as the proof's extra data.
    """
    try:
        checkpoint = Checkpoint.parse(parse_note(signed_checkpoint).text)
    except NoteError as error:
        raise CheckpointError(f"not a signed checkpoint: {error}") from error
    before = start or CompactTree()
    if not 1 <= seq <= checkpoint.size:
        raise CheckpointError(f"record {seq} is not under a checkpoint of {checkpoint.size}")
    if seq <= before.size:
        raise CheckpointError(f"record {seq} was pruned (records 1-{before.size})")
    if before.size + len(records) < checkpoint.size:
        raise CheckpointError(f"the checkpoint covers {checkpoint.size} records, not all here")
    leaves = [record_leaf(record) for record in records[: checkpoint.size - before.size]]
    tree = before.copy()
    tree.extend(leaves)
    if tree.root() != checkpoint.root:
        raise CheckpointError("these records are not the ones the checkpoint signed")
    record = records[seq - 1 - before.size]
    path = inclusion_proof_from(before, leaves, seq - 1)
    return TlogProof(seq - 1, path, signed_checkpoint, stored_form(record))


@dataclass(frozen=True)
class ProvenRecord:
    record: Mapping[str, Any]
    checkpoint: Checkpoint


def verify_record_proof(proof: TlogProof, verifier: Verifier) -> ProvenRecord:
    """The record a tlog proof carries, if it is under its writer's signed checkpoint.

    Offline, with the deployment's public key only: the record must be canonical, its
    `hash` right, its seq the proof's index + 1, and its leaf under the signed root.
    """
    if proof.extra is None:
        raise CheckpointError("the proof does not carry its record")
    try:
        record = json.loads(proof.extra)
    except ValueError as error:
        raise CheckpointError("the proof's record is not JSON") from error
    if not isinstance(record, dict) or not isinstance(record.get("writer"), str):
        raise CheckpointError("the proof's record names no writer")
    if stored_form(record) != proof.extra:
        raise CheckpointError("the proof's record is not as a writer stores it")
    if record.get("seq") != proof.index + 1:
        raise CheckpointError(f"the proof is of record {proof.index + 1}, not {record.get('seq')}")
    if record_hash(record) != record.get("hash"):
        raise CheckpointError("the proof's record was edited")
    writer = record["writer"]
    checkpoint = verify_tlog_proof(
        proof,
        leaf_hash(proof.extra),
        origin_of(verifier.name, writer),
        writer_verifier(verifier, writer),
    )
    return ProvenRecord(record, checkpoint)


# -- the checkpoint history: each checkpoint linked to the one before -------------------


@dataclass(frozen=True)
class CheckpointLink:
    """One entry of a writer's checkpoint history (one JSON line of CHECKPOINTS).

    The signed checkpoint, the RFC 6962 consistency proof from the checkpoint before it
    (empty for the first, or after an empty tree), and the tree state it was signed from,
    so the writer can prove consistency from this size to any later one (a witness's).
    """

    signed: bytes
    proof: tuple[bytes, ...]
    tree: CompactTree

    def encode(self) -> bytes:
        entry = {
            "size": self.tree.size,
            "checkpoint": self.signed.decode(),
            "proof": [base64.b64encode(node).decode() for node in self.proof],
            "peaks": [base64.b64encode(peak).decode() for peak in self.tree.peaks],
        }
        return json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> CheckpointLink:
        """ValueError unless `line` is an entry as `encode` writes it."""
        entry = json.loads(line)
        if not isinstance(entry, dict) or not isinstance(entry.get("checkpoint"), str):
            raise ValueError("not a checkpoint history entry")
        proof, peaks = entry.get("proof"), entry.get("peaks")
        if not isinstance(proof, list) or not isinstance(peaks, list):
            raise ValueError("not a checkpoint history entry")
        if type(entry.get("size")) is not int:
            raise ValueError("not a checkpoint history entry")
        decode = [base64.b64decode(str(item), validate=True) for item in [*proof, *peaks]]
        return cls(
            entry["checkpoint"].encode(),
            tuple(decode[: len(proof)]),
            CompactTree(entry["size"], decode[len(proof) :]),
        )

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint's text, its signature not checked."""
        return Checkpoint.parse(parse_note(self.signed).text)


@dataclass(frozen=True)
class HistoryCheck:
    """What checking a writer's checkpoint history found."""

    writer: str
    checkpoints: int
    latest: CheckpointLink | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_history(writer: str, lines: Iterable[bytes], verifier: Verifier) -> HistoryCheck:
    """Check that every checkpoint `writer` signed extends the one before it.

    With the public key only: each must be signed for the writer's origin, grow the
    tree, and come with a consistency proof from the previous one (RFC 6962 §2.1.2,
    strict). A key holder who rewrote or cut history and re-signed must also rewrite
    this history consistently, which a witness holding any earlier checkpoint refutes.
    """
    origin = origin_of(verifier.name, writer)
    public = writer_verifier(verifier, writer)
    previous: Checkpoint | None = None
    latest: CheckpointLink | None = None
    count = 0
    for count, line in enumerate(lines, start=1):
        where = f"checkpoint {count} in the history of writer {writer}"
        try:
            link = CheckpointLink.decode(line)
            checkpoint = open_checkpoint(link.signed, origin, public)
        except (ValueError, CheckpointError) as error:
            return HistoryCheck(writer, count, latest, f"{where} is unreadable: {error}")
        if (link.tree.size, link.tree.root()) != (checkpoint.size, checkpoint.root):
            return HistoryCheck(
                writer, count, latest, f"{where} holds a tree state it did not sign"
            )
        if previous is not None and checkpoint.size <= previous.size:
            return HistoryCheck(
                writer, count, latest,
                f"{where} has {checkpoint.size} records, no more than the {previous.size} "
                "before it: history was cut",
            )  # fmt: skip
        try:
            if previous is None or previous.size == 0:
                if link.proof:
                    raise ProofError("the first checkpoint needs no consistency proof")
            else:
                verify_consistency(
                    previous.size, checkpoint.size, link.proof, previous.root, checkpoint.root
                )
        except ProofError as error:
            return HistoryCheck(
                writer, count, latest,
                f"{where} ({checkpoint.size} records) does not extend the one before "
                f"({previous.size if previous else 0} records): {error}",
            )  # fmt: skip
        previous, latest = checkpoint, link
    return HistoryCheck(writer, count, latest, None)


def signed_at(signed: bytes, writer: str, verifier: Verifier) -> int | None:
    """When `writer` last signed this checkpoint (its own timestamped cosignature), if it did."""
    origin = origin_of(verifier.name, writer)
    stamp = CosignatureVerifier.from_public_key(origin, verifier.public_key)
    try:
        return cosignatures(signed, [stamp]).get(stamp.vkey)
    except NoteError:
        return None
