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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgate.audit.checkpoint import Checkpoint, CheckpointError, TlogProof
from jitgate.audit.errors import AuditDataError
from jitgate.audit.keys import parse_verifier_key
from jitgate.audit.note import NoteError, Signer, Verifier, check_key_name, parse_note
from jitgate.audit.reader import LogReader
from jitgate.audit.tlog import prove_record, verify_checkpoint, verify_record_proof
from jitgate.audit.verify import Entry
from jitgate.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from jitgate.cli.jitgate.audit import reading
from jitgate.cli.jitgate.audit.options import KeygenOptions, ProveOptions, VerifyProofOptions
from jitgate.core.clock import parse_time


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


def check_public(
    reader: LogReader, writer: str, verifier: Verifier, now: dt.datetime
) -> PublicCheck:
    """`writer`'s records against its signed checkpoint, with the public key only."""
    signed = reader.checkpoint(writer)
    if signed is None:
        return PublicCheck(
            writer,
            f"{writer}: no signed checkpoint (was it run with --checkpoint-key?)",
            ok=False,
        )
    claimed = _claimed_size(signed)
    last_time: list[str] = []

    def remembering() -> Iterator[Mapping[str, Any]]:
        # The time of the newest record the checkpoint covers: how old the checkpoint is.
        for record in _records(reader, writer):
            if record.get("seq") == claimed:
                last_time.append(str(record.get("time")))
            yield record

    check = verify_checkpoint(writer, remembering(), signed, verifier)
    if check.problem is not None:
        return PublicCheck(writer, f"{writer}: {check.problem}", ok=False)
    assert check.checkpoint is not None
    size = check.checkpoint.size
    pending = f", {check.uncovered} newer not yet signed" if check.uncovered else ""
    age = ""
    if size and last_time:
        written = last_time[0]
        age = f"; the last of them written {written} ({_ago(now - parse_time(written))} ago)"
    return PublicCheck(
        writer,
        f"{writer}: signed checkpoint covers records 1-{size}{pending}{age}",
        ok=True,
    )


def _claimed_size(signed: bytes) -> int | None:
    try:
        return Checkpoint.parse(parse_note(signed).text).size
    except (NoteError, CheckpointError):
        return None  # verify_checkpoint says what is wrong with it


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
    signer = Signer.generate(options.name)
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
    try:
        proof = prove_record(records, seq, signed)
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
