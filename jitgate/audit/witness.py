"""A witness's decisions (c2sp.org/tlog-witness `add-checkpoint`): what to cosign, what not.

A witness keeps, for each log it knows, the latest checkpoint it cosigned, and cosigns a
new one only if it extends that one (an RFC 6962 consistency proof from its size). Run
outside the writers' blast radius, with its own key and storage, it is what a holder of
the writers' signing key cannot get round: a rewritten history does not extend what the
witness cosigned (422), a cut log is smaller than it (409), and of two forks it cosigns
only the first it sees. A verifier that requires its cosignature (`verify
--witness-key`) therefore never accepts any of them.

The request body is `old <size>`, up to 63 proof hashes in base64, an empty line, then
the signed checkpoint; the answers are those of the spec:

    200  cosignature lines (c2sp.org/tlog-cosignature), the new latest persisted first
    400  malformed request, or an old size larger than the checkpoint's
    403  no signature by the log's key
    404  a log (origin) the witness does not know
    409  the old size is not the witness's latest: the body is that size (text/x.tlog.size);
         or the same size with another root hash
    422  the consistency proof does not verify

The logs a witness knows are every writer of the deployments whose checkpoint verifier
keys it is given: origin `<key name>/<writer id>` (see `checkpoint.origin_of`).
Pure: no I/O; `witnessserver` stores and serves.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from jitgate.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    writer_verifier,
)
from jitgate.audit.cosignature import Cosigner
from jitgate.audit.merkle import HASH_SIZE, ProofError, verify_consistency
from jitgate.audit.note import NoteError, Verifier, parse_note

MAX_PROOF_LINES: Final = 63
SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
_OLD: Final = re.compile(r"old (0|[1-9][0-9]{0,18})")
_WRITER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


@dataclass(frozen=True)
class Submission:
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, verbatim

    def render(self) -> bytes:
        lines = [f"old {self.old_size}", *(base64.b64encode(node).decode() for node in self.proof)]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Accepted:
    """A checkpoint the witness cosigned: persist `latest` before answering with `answer`."""

    origin: str
    latest: bytes
    answer: Answer


def _refuse(status: int, message: str) -> Answer:
    return Answer(status, (message + "\n").encode())


def parse_submission(body: bytes) -> Submission | Answer:
    """The request, or the 400 answer saying what is wrong with it."""
    head, separator, checkpoint = body.partition(b"\n\n")
    if not separator or not checkpoint:
        return _refuse(
            400, "the body is an old size line, proof lines, an empty line, a checkpoint"
        )
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return _refuse(400, "the old size and proof lines are ASCII")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        return _refuse(400, "the first line is 'old <size>' without leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        return _refuse(400, f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except ValueError:
            return _refuse(400, "a consistency proof line is not base64")
        if len(node) != HASH_SIZE or base64.b64encode(node).decode() != line:
            return _refuse(400, f"a consistency proof line is not a {HASH_SIZE}-byte hash")
        proof.append(node)
    return Submission(int(match.group(1)), tuple(proof), checkpoint)


class Witness:
    """Decides add-checkpoint requests for the logs of the given deployment keys.

    `own` names the log of the writer this witness runs beside (a webhook replica witnessing
    its peers): a log is never its own witness, so its checkpoints are refused (404).
    """

    def __init__(
        self, cosigner: Cosigner, log_keys: Sequence[Verifier], own: str | None = None
    ) -> None:
        self.cosigner = cosigner
        self._log_keys = list(log_keys)
        self._own = own

    def log_verifier(self, origin: str) -> Verifier | None:
        """The key that signs `origin`'s checkpoints, if it is a log this witness knows."""
        for key in self._log_keys:
            prefix = key.name + "/"
            writer = origin.removeprefix(prefix)
            if origin.startswith(prefix) and _WRITER.fullmatch(writer):
                return writer_verifier(key, writer)
        return None

    def add_checkpoint(
        self, submission: Submission, latest: bytes | None, now: int
    ) -> Accepted | Answer:
        """Cosign `submission` if it extends `latest` (the one cosigned before, if any).

        The caller holds the origin's lock from reading `latest` until it has persisted
        the accepted checkpoint, so two requests never both extend the same old state.
        """
        try:
            origin = parse_note(submission.checkpoint).text.split("\n", 1)[0]
        except NoteError as error:
            return _refuse(400, f"not a signed note: {error}")
        if origin == self._own:
            return _refuse(404, f"{origin} is this witness's own log: a log is not its own witness")
        verifier = self.log_verifier(origin)
        if verifier is None:
            return _refuse(404, f"this witness knows no log {origin}")
        try:
            checkpoint = open_checkpoint(submission.checkpoint, origin, verifier)
        except CheckpointError as error:
            if isinstance(error.__cause__, NoteError):
                return _refuse(403, f"the checkpoint is not signed by the key of {origin}")
            return _refuse(400, str(error))
        if submission.old_size > checkpoint.size:
            return _refuse(400, "the old size is larger than the checkpoint's")
        previous = Checkpoint.parse(parse_note(latest).text) if latest is not None else None
        known = previous.size if previous is not None else 0
        if submission.old_size != known:
            return Answer(409, f"{known}\n".encode(), SIZE_CONTENT_TYPE)
        if previous is None or known == 0:
            if submission.proof:
                return _refuse(422, "a consistency proof from the empty tree must be empty")
        elif checkpoint.size == known:
            if checkpoint.root != previous.root:
                return Answer(409, f"{known}\n".encode(), SIZE_CONTENT_TYPE)
            if submission.proof:
                return _refuse(422, "a consistency proof between equal sizes must be empty")
        else:
            try:
                verify_consistency(
                    known, checkpoint.size, submission.proof, previous.root, checkpoint.root
                )
            except ProofError as error:
                return _refuse(422, f"the consistency proof does not verify: {error}")
        cosignature = self.cosigner.cosign(checkpoint.text, now)
        return Accepted(origin, submission.checkpoint, Answer(200, cosignature.line.encode()))
