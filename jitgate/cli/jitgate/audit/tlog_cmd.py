"""The audit log as a transparency log on the command line: `keygen`, the public check of
`verify --verifier-key`, `prove` and `verify-proof`.

What each proves, and against whom:
- `verify --verifier-key PUB` needs no secret: each writer's records from seq 1 must hash to
  the root its last signed checkpoint signed. Someone holding the HMAC key can re-MAC an
  edited record, but not re-sign the checkpoint without the writer's Ed25519 key; records
  deleted from under a checkpoint are named. What it cannot see on its own: a key holder
  who re-signs a rewritten history, or a tail cut together with its checkpoint (witnesses).
- `prove WRITER:SEQ` writes a C2SP tlog-proof of one record: the record itself, its
  inclusion proof and the signed checkpoint. `verify-proof` checks it offline with the
  public key alone, without the log or any secret.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.audit import pruning
from jitgate.audit.checkpoint import CheckpointError, TlogProof
from jitgate.audit.cosignature import Cosigner
from jitgate.audit.errors import AuditDataError
from jitgate.audit.keys import parse_verifier_key
from jitgate.audit.merkle import CompactTree
from jitgate.audit.note import NoteError, Signer, Verifier, check_key_name
from jitgate.audit.reader import LogReader
from jitgate.audit.tlog import (
    CheckpointLink,
    LeafTree,
    prove_record,
    signed_at,
    verify_checkpoint,
    verify_checkpoint_leaves,
    verify_history,
    verify_record_proof,
)
from jitgate.audit.verify import Entry
from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import KeygenOptions, ProveOptions, VerifyProofOptions
from jitgate.core.clock import format_time


def load_verifier(path: str) -> Verifier:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the verifier key {path}") from error
    return parse_verifier_key(text)


def _records(reader: LogReader, writer: str) -> Iterator[Mapping[str, Any]]:
    for item in reader.chain(writer):
        if isinstance(item, Entry) and item.record is not None:
            yield item.record


@dataclass(frozen=True)
class PublicCheck:
    writer: str
    line: str
    ok: bool


@dataclass(frozen=True)
class PublicPlan:
    """A writer's checkpoint history, checked; its records are checked against the latest
    while the chain is verified, through `leaves` (`verify_chain`'s `on_record`)."""

    signed: bytes  # CHECKPOINT, as stored (with the cosignatures it gathered)
    latest: CheckpointLink
    checkpoints: int
    leaves: LeafTree


def plan_public(
    reader: LogReader, writer: str, verifier: Verifier, prefixes: Sequence[pruning.Anchor] = ()
) -> PublicPlan | PublicCheck:
    """Check `writer`'s checkpoint history with the public key only; a failure is final.

    `prefixes` are where its log may start after pruning, so its leaves are built in the
    chain's one pass from the pruned prefix's tree state."""
    signed = reader.checkpoint(writer)
    if signed is None:
        return PublicCheck(
            writer,
            f"{writer}: no signed checkpoint (was it run with --checkpoint-key?)",
            ok=False,
        )
    history = verify_history(writer, reader.checkpoint_history(writer), verifier)
    if history.problem is not None:
        return PublicCheck(writer, f"{writer}: {history.problem}", ok=False)
    if history.latest is None:
        return PublicCheck(
            writer, f"{writer}: the checkpoint history is gone, only the latest is left", ok=False
        )
    latest = history.latest
    current = verify_checkpoint(writer, [], signed, verifier).checkpoint
    if (
        current is None
        or current.size > latest.tree.size
        or (current.size == latest.tree.size and current.root != latest.tree.root())
    ):
        return PublicCheck(
            writer,
            f"{writer}: the latest checkpoint is not the last one of its history "
            f"({latest.tree.size} records)",
            ok=False,
        )
    trees = [anchor.tree for anchor in prefixes if anchor.tree is not None]
    return PublicPlan(signed, latest, history.checkpoints, LeafTree(latest.tree.size, None, trees))


def check_public(
    reader: LogReader,
    writer: str,
    verifier: Verifier,
    now: dt.datetime,
    plan: PublicPlan | PublicCheck,
    chain_ok: bool,
    pruned: CompactTree | None = None,
    prefixes: Sequence[pruning.Anchor] = (),
) -> PublicCheck:
    """`writer`'s records against its latest checkpoint, with the public key only.

    From the leaves built while its chain was verified (`chain_ok`) from seq 1; a broken or
    pruned chain is read once more to say what the checkpoint finds, a pruned one from the
    tree state of its pruned prefix (`pruned`, from the pruning record; or among `prefixes`,
    by the first record read, when the chain broke before its start was known).
    """
    if isinstance(plan, PublicCheck):
        return plan
    latest = plan.latest
    if chain_ok and plan.leaves.whole:
        check = verify_checkpoint_leaves(writer, plan.leaves, latest.signed, verifier)
    else:
        records = _records(reader, writer)
        trees = [anchor.tree for anchor in prefixes if anchor.tree is not None]
        check = verify_checkpoint(writer, records, latest.signed, verifier, pruned, trees)
    if check.problem is not None:
        return PublicCheck(writer, f"{writer}: {check.problem}", ok=False)
    size = latest.tree.size
    pending = f", {check.uncovered} newer not yet signed" if check.uncovered else ""
    if pruned is not None:
        pending += f" (records 1-{pruned.size} pruned, their tree state from the pruning record)"
    stamps = [
        t
        for t in (
            signed_at(plan.signed, writer, verifier),
            signed_at(latest.signed, writer, verifier),
        )
        if t is not None
    ]
    age = ""
    if stamps:
        when = dt.datetime.fromtimestamp(max(stamps), dt.UTC)
        age = f"; signed {format_time(when)} ({_ago(now - when)} ago)"
    return PublicCheck(
        writer,
        f"{writer}: signed checkpoint covers records 1-{size}{pending}, {plan.checkpoints} "
        f"checkpoint(s) each extending the one before{age}",
        ok=True,
    )


def _ago(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def run_keygen(options: KeygenOptions) -> int:
    try:
        check_key_name(options.name)
    except NoteError as error:
        raise UsageError(f"the key name {options.name!r} cannot be used: {error}") from error
    signer: Signer | Cosigner = (
        Cosigner.generate(options.name) if options.witness else Signer.generate(options.name)
    )
    try:
        fd = os.open(options.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise UsageError(f"{options.out} exists; a signing key is never overwritten") from error
    with os.fdopen(fd, "w") as file:
        file.write(signer.skey + "\n")
    print(signer.verifier.vkey)
    return EXIT_OK


def _record_ref(text: str) -> tuple[str, int]:
    writer, _, seq = text.rpartition(":")
    if not writer or not seq.isdigit() or int(seq) < 1:
        raise UsageError(f"name the record as WRITER:SEQ, e.g. webhook-0:42, not {text!r}")
    return writer, int(seq)


def run_prove(options: ProveOptions) -> int:
    writer, seq = _record_ref(options.record)
    with reading.opened(options.log) as reader:
        if writer not in reader.writers():
            raise UsageError(f"there is no writer {writer!r} in the {reader.description}")
        signed = reader.checkpoint(writer)
        if signed is None:
            raise AuditDataError(f"writer {writer} has no signed checkpoint to prove against")
        records = list(_records(reader, writer))
        # The writer's own pruning records are among its records (a file log's).
        stored = [*reader.pruning_records(), *records]
        anchors = [*pruning.by_writer(stored).get(writer, []), *reader.pruned_prefixes(writer)]
    first = records[0].get("seq") if records else None
    start = pruning.start_tree(anchors, first) if first != 1 else None
    try:
        proof = prove_record(records, seq, signed, start)
    except CheckpointError as error:
        raise AuditDataError(f"cannot prove record {seq} of writer {writer}: {error}") from error
    data = proof.render()
    if options.out:
        Path(options.out).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return EXIT_OK


def run_verify_proof(options: VerifyProofOptions) -> int:
    verifier = load_verifier(options.verifier_key)
    try:
        data = sys.stdin.buffer.read() if options.proof == "-" else Path(options.proof).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read the proof {options.proof}") from error
    try:
        proven = verify_record_proof(TlogProof.parse(data), verifier)
    except CheckpointError as error:
        print(f"NOT PROVEN: {error}")
        return EXIT_CHECK_FAILED
    record = proven.record
    print(
        f"proven: record {record['seq']} of writer {record['writer']} is under its signed "
        f"checkpoint of {proven.checkpoint.size} records"
    )
    sys.stdout.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return EXIT_OK
