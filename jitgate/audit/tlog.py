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

Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jitgate.audit.chain import Linked, record_hash, stored_form
from jitgate.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    origin_of,
    writer_verifier,
)
from jitgate.audit.merkle import CompactTree, leaf_hash
from jitgate.audit.note import Verifier


def record_leaf(record: Mapping[str, Any]) -> bytes:
    """The leaf hash of a stored record, as read back (ValueError if JSON cannot hold it)."""
    return leaf_hash(stored_form(record))


def linked_leaf(linked: Linked) -> bytes:
    """The leaf hash of a record just chained: the same as `record_leaf`, from its line."""
    return leaf_hash(linked.line.removesuffix(b"\n"))


def encode_tree(tree: CompactTree) -> bytes:
    """The writer's saved tree state: size, the perfect subtrees' roots, and the root."""
    state = {
        "size": tree.size,
        "peaks": [base64.b64encode(peak).decode() for peak in tree.peaks],
        "root": base64.b64encode(tree.root()).decode(),
    }
    return json.dumps(state, sort_keys=True).encode() + b"\n"


def decode_tree(data: bytes) -> CompactTree:
    """The tree state saved by `encode_tree`; ValueError unless it is whole and consistent."""
    state = json.loads(data)
    if not isinstance(state, dict) or type(state.get("size")) is not int:
        raise ValueError("not a tree state")
    peaks = state.get("peaks")
    if not isinstance(peaks, list) or not all(isinstance(peak, str) for peak in peaks):
        raise ValueError("not a tree state")
    tree = CompactTree(state["size"], [base64.b64decode(peak, validate=True) for peak in peaks])
    if base64.b64encode(tree.root()).decode() != state.get("root"):
        raise ValueError("the tree state's root does not match its subtrees")
    return tree


@dataclass(frozen=True)
class CheckpointCheck:
    """What checking a writer's records against its signed checkpoint found."""

    writer: str
    checkpoint: Checkpoint | None
    records: int  # records read, from seq 1
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def uncovered(self) -> int:
        """Records newer than the checkpoint: stored, not yet signed for."""
        return max(0, self.records - self.checkpoint.size) if self.checkpoint else self.records


def verify_checkpoint(
    writer: str,
    records: Iterable[Mapping[str, Any]],
    signed_checkpoint: bytes,
    verifier: Verifier,
) -> CheckpointCheck:
    """Check `writer`'s records (in seq order, from seq 1) against its signed checkpoint.

    Needs only the deployment's public key (`verifier`, a vkey whose name is the origin
    prefix): the checkpoint must be signed for `writer`'s origin, the records must hash
    to what their `hash` says, and the first `size` of them must have the signed root.
    Records past the checkpoint are counted, not judged (the next checkpoint covers them).
    """
    origin = origin_of(verifier.name, writer)
    try:
        checkpoint = open_checkpoint(signed_checkpoint, origin, writer_verifier(verifier, writer))
    except CheckpointError as error:
        return CheckpointCheck(writer, None, 0, str(error))
    tree = CompactTree()
    count = 0
    for record in records:
        count += 1
        if count > checkpoint.size:
            continue
        where = f"record {count} of writer {writer}"
        if record.get("writer") != writer or record.get("seq") != count:
            return CheckpointCheck(
                writer, checkpoint, count, f"{where} is missing or out of place: found "
                f"seq {record.get('seq')!r} of writer {record.get('writer')!r}"
            )  # fmt: skip
        if record_hash(record) != record.get("hash"):
            return CheckpointCheck(writer, checkpoint, count, f"{where} was edited")
        tree.append(record_leaf(record))
    if count < checkpoint.size:
        return CheckpointCheck(
            writer,
            checkpoint,
            count,
            f"the signed checkpoint covers {checkpoint.size} records of writer {writer}, "
            f"the log holds {count}: records {count + 1}-{checkpoint.size} are gone",
        )
    if tree.root() != checkpoint.root:
        return CheckpointCheck(
            writer,
            checkpoint,
            count,
            f"records 1-{checkpoint.size} of writer {writer} are not the ones the checkpoint "
            "signed: history was rewritten",
        )
    return CheckpointCheck(writer, checkpoint, count, None)
