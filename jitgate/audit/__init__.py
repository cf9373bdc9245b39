"""jitgate's tamper-evident audit log (DESIGN.md §5).

Module map. Pure (no I/O, checked by import-linter): `model` (a stored record), `chain` (how a
record is linked, hashed and MAC'd), `verify` (the first broken record of a writer), `merkle`
(RFC 6962 trees and proofs), `note` (C2SP signed notes), `cosignature` (C2SP timestamped
cosignatures), `checkpoint` (C2SP checkpoints and tlog proofs), `tlog` (a writer's chain as a
transparency log: the public check, record proofs, the linked checkpoint history), `query`
(selecting records), `sessionlog` (sessions read back out of records: listing, playing),
`report` (the access review), `reconcile` (matching the API server's audit log), `witness`
(what a witness cosigns), `pruning` (where a pruned log starts, as its pruning records say,
and the tree state of what a prune drops), `timefmt`, `errors` (the exception tree), `sink`
(what the writer needs from a backend).
With I/O: `writer` (group commit, durable before it returns), `checkpointer` (the tree and signed
checkpoints beside the writer), `connect` and `url` (opening a log by URL), `keys` (HMAC, Ed25519
and witness keys), `filelayout`, `filesink`, `filereader`, `filecheckpoints` (the file backend),
`iothread` (the thread a file backend's blocking calls run on), `appendproc` and
`appendchild` (the process that writes and syncs a file log's batches instead, for the
webhook: the writer's end and the process's own), `pgschema`, `pgsink`,
`pgreader`, `pgcheckpoints`, `pgprune` (the PostgreSQL backend, its retention and legal hold),
`reader` (what readers share), `recorder` (a live session's bytes into `session.*` records,
with backpressure), `witnessserver` (`jitgate audit witness`: storage and HTTP; a webhook
replica witnessing its peers reuses both), `witnessclient` (a writer submitting checkpoints to
witnesses, its peers among them).

Writers (the operator, each webhook replica):

    async with open_audit_writer(url, writer_id=pod_name, key=load_key(path)) as writer:
        record = await writer.append(AuditEvent(type="action.allowed", ...))

`append` returns once the record is durable and raises `AuditWriteError` otherwise;
`writer.healthy` / `writer.last_error` tell `/readyz` whether the log is writable.

With `checkpoint_key=load_checkpoint_key(path)` each writer also keeps an RFC 6962 Merkle
tree over its records and signs C2SP checkpoints of it (file and PostgreSQL sinks alike,
through `checkpointer.CheckpointStore`); anyone holding the public key checks a writer's
records with `tlog.verify_checkpoint` (see `tlog`).
"""

from jitgate.audit.chain import GENESIS, ChainHead
from jitgate.audit.connect import default_writer_id, open_audit_writer, open_log_reader
from jitgate.audit.errors import (
    AuditConfigError,
    AuditDataError,
    AuditError,
    AuditReadError,
    AuditWriteError,
)
from jitgate.audit.keys import load_checkpoint_key, load_key, parse_verifier_key
from jitgate.audit.model import AuditRecord
from jitgate.audit.writer import AuditWriter
from jitgate.core.events import RECORD_TYPES, Action, Actor, AuditEvent, Replicas

__all__ = [
    "GENESIS",
    "RECORD_TYPES",
    "Action",
    "Actor",
    "AuditConfigError",
    "AuditDataError",
    "AuditError",
    "AuditEvent",
    "AuditReadError",
    "AuditRecord",
    "AuditWriteError",
    "AuditWriter",
    "ChainHead",
    "Replicas",
    "default_writer_id",
    "load_checkpoint_key",
    "load_key",
    "open_audit_writer",
    "open_log_reader",
    "parse_verifier_key",
]
