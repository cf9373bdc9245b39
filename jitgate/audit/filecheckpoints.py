"""Checkpoints of a file log: CHECKPOINT, TREE and CHECKPOINTS next to the segments.

CHECKPOINT is the last signed checkpoint, verbatim (a C2SP signed note anyone can read
and check with the public key, with any witness cosignatures); TREE the Merkle tree
state it was signed from, so a restarted writer carries on without re-reading its whole
log. Each is replaced whole (written aside, fsync'd, renamed), on a thread of its own so
checkpoints never queue behind the segments' fsyncs. CHECKPOINTS is the history: one
`tlog.CheckpointLink` per tree size signed, appended and fsync'd before CHECKPOINT is
replaced, so a crash between the two leaves the history ahead, and `load` takes it.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jitgate.audit import filelayout as layout
from jitgate.audit.checkpointer import SavedTree
from jitgate.audit.errors import AuditWriteError
from jitgate.audit.iothread import IoThread
from jitgate.audit.merkle import CompactTree
from jitgate.audit.tlog import CheckpointLink, decode_tree, encode_tree, record_leaf

logger = logging.getLogger("jitgate.audit")
T = TypeVar("T")

_FILE_MODE = 0o640


def read_checkpoint(writer_dir: Path) -> bytes | None:
    """The last checkpoint a writer signed, or None if it has none (yet)."""
    try:
        return (writer_dir / layout.CHECKPOINT_FILE).read_bytes()
    except FileNotFoundError:
        return None


def read_history(writer_dir: Path) -> list[bytes]:
    """The lines of a writer's checkpoint history, oldest first ([] if it has none)."""
    try:
        with (writer_dir / layout.HISTORY_FILE).open("rb") as file:
            return [line for line in file if line.endswith(b"\n")]
    except FileNotFoundError:
        return []


def _last_link(writer_dir: Path) -> CheckpointLink | None:
    try:
        _, line = layout.tail(writer_dir / layout.HISTORY_FILE)
    except FileNotFoundError:
        return None
    return CheckpointLink.decode(line) if line is not None else None


class FileCheckpointStore:
    def __init__(self, writer_dir: Path) -> None:
        self._dir = writer_dir
        self.description = f"checkpoints in {writer_dir}"
        self._thread = IoThread(f"tlog-{writer_dir.name}")

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await self._thread.run(function, *args)

    async def load(self) -> SavedTree:
        return await self._run(self._load)

    def _load(self) -> SavedTree:
        tree: CompactTree | None = None
        try:
            tree = decode_tree((self._dir / layout.TREE_FILE).read_bytes())
        except FileNotFoundError:
            pass
        except ValueError as error:  # rebuilt from the records instead
            logger.warning("Ignoring the damaged tree state in %s: %s", self._dir, error)
        checkpoint = read_checkpoint(self._dir)
        try:
            link = _last_link(self._dir)
        except ValueError as error:
            raise AuditWriteError(f"the checkpoint history in {self._dir} is damaged") from error
        if link is not None and (tree is None or tree.size < link.tree.size):
            # Appended, then the writer stopped before CHECKPOINT and TREE were replaced.
            return SavedTree(link.tree, link.signed)
        return SavedTree(tree, checkpoint)

    async def leaves(self, first_seq: int, last_seq: int) -> list[bytes]:
        return await self._run(self._leaves, first_seq, last_seq)

    def _leaves(self, first_seq: int, last_seq: int) -> list[bytes]:
        segments, _ = layout.list_segments(self._dir)
        start = bisect.bisect_right([segment.first_seq for segment in segments], first_seq) - 1
        leaves: list[bytes] = []
        for segment in segments[max(start, 0) :]:
            with segment.path.open("rb") as file:
                for line in file:
                    record = layout.parse_record(line)
                    seq = record.get("seq") if record else None
                    if record is None or type(seq) is not int:
                        raise AuditWriteError(f"a damaged record in {segment.path}")
                    if seq < first_seq:
                        continue
                    if seq != first_seq + len(leaves):
                        raise AuditWriteError(
                            f"record {first_seq + len(leaves)} is not in {self._dir}"
                        )
                    leaves.append(record_leaf(record))
                    if seq == last_seq:
                        return leaves
        raise AuditWriteError(f"records {first_seq}-{last_seq} are not all in {self._dir}")

    async def save(self, tree: CompactTree, signed: bytes, link: CheckpointLink | None) -> None:
        await self._run(self._save, encode_tree(tree), signed, link)

    def _save(self, tree: bytes, signed: bytes, link: CheckpointLink | None) -> None:
        if link is not None:
            path = self._dir / layout.HISTORY_FILE
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            fd = os.open(path, flags, _FILE_MODE)
            with os.fdopen(fd, "ab") as file:
                file.write(link.encode())
                file.flush()
                os.fsync(fd)
        for name, data in ((layout.TREE_FILE, tree), (layout.CHECKPOINT_FILE, signed)):
            aside = self._dir / (name + layout.TEMPORARY_SUFFIX)
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(fd)
            os.replace(aside, self._dir / name)
        layout.fsync_dir(self._dir)

    async def tree_at(self, size: int) -> CompactTree | None:
        return await self._run(self._tree_at, size)

    def _tree_at(self, size: int) -> CompactTree | None:
        for line in reversed(read_history(self._dir)):
            link = CheckpointLink.decode(line)
            if link.tree.size == size:
                return link.tree
            if link.tree.size < size:
                return None
        return None

    async def aclose(self) -> None:
        self._thread.shutdown()
