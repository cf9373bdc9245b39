"""The writer's side of the transparency log: keep the Merkle tree, sign checkpoints.

The writer hands every stored record to `add()` (in chain order, right after the write
that stored it); the tree grows in O(log n) and nothing else happens on the append path.
A background task signs a checkpoint of the tree at most `interval` seconds after the
first unsigned record, so while records are written one is signed at least every
`interval`, and `aclose()` signs the last one. Signing and storing run off the hot path.

A checkpoint is never signed for a tree that does not extend the last one signed
(c2sp.org/tlog-checkpoint: "A log MUST not sign any checkpoint which is inconsistent
with any checkpoint it previously signed"). If storage lost records a checkpoint
covers, or the saved state disagrees with the log, the checkpointer stops signing and
says why (`error`); a verifier then sees the checkpoint go stale and the loss named.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from jitgate.audit.chain import ChainHead, Linked
from jitgate.audit.checkpoint import Checkpoint, writer_signer
from jitgate.audit.merkle import CompactTree
from jitgate.audit.note import Signer, parse_note
from jitgate.audit.tlog import linked_leaf

logger = logging.getLogger("jitgate.audit")

DEFAULT_INTERVAL: Final = 1.0  # seconds between checkpoints while records are written


@dataclass(frozen=True)
class SavedTree:
    """What a checkpoint store kept: the tree state and the last signed checkpoint."""

    tree: CompactTree | None
    checkpoint: bytes | None


class CheckpointStore(Protocol):
    description: str

    async def load(self) -> SavedTree: ...

    async def leaves(self, first_seq: int, last_seq: int) -> list[bytes]:
        """Leaf hashes of the stored records `first_seq`..`last_seq`; raise if any is gone."""
        ...

    async def save(self, tree: CompactTree, signed: bytes) -> None:
        """Keep the tree state and its signed checkpoint, replacing the previous ones."""
        ...

    async def aclose(self) -> None: ...


class Checkpointer:
    def __init__(
        self,
        store: CheckpointStore,
        *,
        key: Signer,
        writer_id: str,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._store = store
        self._signer = writer_signer(key, writer_id)
        self.origin = self._signer.name
        self._interval = interval
        self._tree = CompactTree()
        self._signed = Checkpoint(self.origin, 0, self._tree.root())
        self._latest: bytes | None = None
        self._error: str | None = None
        self._unsigned = asyncio.Event()
        self._publishing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def error(self) -> str | None:
        """Why no more checkpoints are signed, or None while they are."""
        return self._error

    @property
    def latest(self) -> bytes | None:
        """The last signed checkpoint (a signed note), if any."""
        return self._latest

    @property
    def size(self) -> int:
        return self._tree.size

    async def start(self, head: ChainHead | None) -> None:
        """Load the saved tree, catch up with the records stored since, start signing."""
        saved = await self._store.load()
        if saved.tree is not None:
            self._tree = saved.tree
        self._latest = saved.checkpoint
        if saved.checkpoint is not None:
            self._signed = Checkpoint.parse(parse_note(saved.checkpoint).text)
            self._check_signed()
        await self.resync(head)
        self._task = asyncio.create_task(self._sign_while_writing(), name=f"tlog-{self.origin}")

    async def resync(self, head: ChainHead | None) -> None:
        """Bring the tree to storage's chain head (after opening, or recovering a write)."""
        stored = head.seq if head else 0
        if stored < self._tree.size:
            self._stop(
                f"the log of {self.origin} ends at record {stored}, but its Merkle tree "
                f"already holds {self._tree.size}: records were lost"
            )
        elif stored > self._tree.size and self._error is None:
            try:
                leaves = await self._store.leaves(self._tree.size + 1, stored)
            except Exception as error:
                self._stop(f"cannot read records back into the Merkle tree: {error}")
                return
            for leaf in leaves:
                self._tree.append(leaf)
                self._check_signed()
            self._unsigned.set()

    def _check_signed(self) -> None:
        """At the size last signed, the tree must have the root that was signed."""
        if self._tree.size == self._signed.size and self._tree.root() != self._signed.root:
            self._stop(
                f"the log of {self.origin} no longer has the root its last checkpoint signed "
                f"at {self._signed.size} records"
            )

    def add(self, records: Sequence[Linked]) -> None:
        """Add just-stored records, in chain order."""
        if self._error is not None:
            return
        for stored in records:
            if stored.seq != self._tree.size + 1:
                self._stop(f"record {stored.seq} would be leaf {self._tree.size + 1}")
                return
            self._tree.append(linked_leaf(stored))
        self._unsigned.set()

    async def publish(self) -> bytes | None:
        """Sign and store a checkpoint of the tree now, unless it is signed already."""
        async with self._publishing:
            if self._error is not None:
                return None
            tree = self._tree.copy()
            if tree.size == self._signed.size and self._latest is not None:
                return self._latest
            checkpoint = Checkpoint(self.origin, tree.size, tree.root())
            signed = checkpoint.sign(self._signer)
            await self._store.save(tree, signed)
            self._signed, self._latest = checkpoint, signed
            return signed

    async def _sign_while_writing(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await self._unsigned.wait()
            # Records that come in meanwhile join this checkpoint: one per interval.
            await asyncio.sleep(max(0.0, last + self._interval - loop.time()))
            self._unsigned.clear()
            last = loop.time()
            try:
                await self.publish()
            except Exception as error:  # logged; the next round tries again
                logger.error("Cannot store a checkpoint of %s: %s", self.origin, error)
                self._unsigned.set()

    def _stop(self, reason: str) -> None:
        if self._error is None:
            logger.error("No more checkpoints are signed for %s: %s", self.origin, reason)
            self._error = reason

    async def aclose(self) -> None:
        """Sign the last records (if it ever started), then release the store."""
        if self._task is None:  # never started: nothing of this tree may be signed
            await self._store.aclose()
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self.publish()
        except Exception as error:
            logger.error("Cannot store the last checkpoint of %s: %s", self.origin, error)
        finally:
            await self._store.aclose()
