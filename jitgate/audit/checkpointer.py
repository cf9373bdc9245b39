"""The writer's side of the transparency log: keep the Merkle tree, sign checkpoints.

The writer hands every stored record to `add()` (in chain order, right after the write
that stored it); the tree grows in O(log n) and nothing else happens on the append path.
A background task signs a checkpoint at most `interval` (1 s) after a record arrives, so
while records are written one is signed at least every second, and re-signs the same
tree every `idle_interval` (60 s) while none are: each checkpoint carries the writer's
own timestamped cosignature (`cosignature`), so its age is signed, not guessed.
`aclose()` signs the last records. When to sign is decided by the injected clock
(`publish_due()`); the task only polls it, a quarter of the shorter interval apart, by
awaiting the injected `sleep` (`asyncio.sleep`, real time, by default). A test passes a
manual clock and a sleep it releases, so it decides when each poll runs and what time it
sees, without sleeping.

Each new tree size is linked to the one signed before it by an RFC 6962 consistency
proof, appended to the writer's checkpoint history (`tlog.CheckpointLink`) before the
checkpoint replaces the last one; the writer keeps the last signed tree state and the
leaves since, enough to compute that proof without reading the log back.

A checkpoint is never signed for a tree that does not extend the last one signed
(c2sp.org/tlog-checkpoint: "A log MUST not sign any checkpoint which is inconsistent
with any checkpoint it previously signed"). If storage lost records a checkpoint
covers, or the saved state disagrees with the log, the checkpointer stops signing and
says why (`error`); a verifier then sees the checkpoint go stale and the loss named.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from jitgate.audit.chain import ChainHead, Linked
from jitgate.audit.checkpoint import Checkpoint, writer_signer
from jitgate.audit.cosignature import Cosigner, add_signatures
from jitgate.audit.merkle import CompactTree, consistency_proof_from
from jitgate.audit.note import Signature, Signer, parse_note
from jitgate.audit.tlog import CheckpointLink
from jitgate.audit.witness import Submission
from jitgate.audit.witnessclient import WitnessClient
from jitgate.core.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger("jitgate.audit")

DEFAULT_INTERVAL: Final = 1.0  # seconds between checkpoints while records are written
DEFAULT_IDLE_INTERVAL: Final = 60.0  # seconds between re-signed checkpoints when idle


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

    async def save(self, tree: CompactTree, signed: bytes, link: CheckpointLink | None) -> None:
        """Keep the tree state and its signed checkpoint, replacing the previous ones;
        first append `link` to the checkpoint history when the tree grew."""
        ...

    async def tree_at(self, size: int) -> CompactTree | None:
        """The tree state of the checkpoint of `size` records in the history, if any."""
        ...

    async def aclose(self) -> None: ...


class WitnessRefusal(Exception):
    """A witness that gave no cosignature; the message says why."""


def self_cosigner(signer: Signer) -> Cosigner:
    """The writer's key as the cosigner that timestamps its own checkpoints."""
    return Cosigner.from_private_key(signer.name, signer.private_key)


def timestamped(checkpoint: Checkpoint, signer: Signer, when: dt.datetime) -> bytes:
    """`checkpoint` signed by the writer, with its own cosignature saying when."""
    signed = checkpoint.sign(signer)
    stamp = self_cosigner(signer).cosign(checkpoint.text, int(when.timestamp()))
    return add_signatures(signed, [stamp])


class Checkpointer:
    def __init__(
        self,
        store: CheckpointStore,
        *,
        key: Signer,
        writer_id: str,
        interval: float = DEFAULT_INTERVAL,
        idle_interval: float = DEFAULT_IDLE_INTERVAL,
        clock: Clock = SYSTEM_CLOCK,
        witnesses: Sequence[WitnessClient] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._witnesses = list(witnesses)
        self._signer = writer_signer(key, writer_id)
        self.origin = self._signer.name
        self._interval = dt.timedelta(seconds=interval)
        self._idle_interval = dt.timedelta(seconds=idle_interval)
        # Polled this often; a record waits at most `interval` for its checkpoint.
        self._poll = min(interval, idle_interval) / 4
        self._clock = clock
        self._sleep = sleep
        self._tree = CompactTree()
        self._signed = Checkpoint(self.origin, 0, self._tree.root())
        self._signed_tree: CompactTree | None = CompactTree()  # the tree `_signed` was
        self._since: list[bytes] = []  # leaves added after `_signed_tree`
        self._signed_at: dt.datetime | None = None
        self._latest: bytes | None = None
        self._error: str | None = None
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
        self._latest = saved.checkpoint
        if saved.checkpoint is not None:
            self._signed = Checkpoint.parse(parse_note(saved.checkpoint).text)
            self._signed_tree = None  # known again once the tree reaches its size
        if saved.tree is not None:
            self._tree = saved.tree
        self._reached_signed_size()
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
                self._grow(leaf)
        if self._signed_tree is None and self._error is None:
            self._stop(
                f"the Merkle tree of {self.origin} never had the size of its last checkpoint "
                f"({self._signed.size} records)"
            )

    def _grow(self, leaf: bytes) -> None:
        self._tree.append(leaf)
        self._since.append(leaf)
        self._reached_signed_size()

    def _reached_signed_size(self) -> None:
        """At the size last signed, the tree must have the root that was signed."""
        if self._tree.size != self._signed.size:
            return
        if self._tree.root() != self._signed.root:
            self._stop(
                f"the log of {self.origin} no longer has the root its last checkpoint signed "
                f"at {self._signed.size} records"
            )
        self._signed_tree, self._since = self._tree.copy(), []

    def add(self, records: Sequence[Linked], leaves: Sequence[bytes]) -> None:
        """Add just-stored records, in chain order, with their leaf hashes (`linked_leaf`)."""
        if self._error is not None:
            return
        for stored, leaf in zip(records, leaves, strict=True):
            if stored.seq != self._tree.size + 1:
                self._stop(f"record {stored.seq} would be leaf {self._tree.size + 1}")
                return
            self._grow(leaf)

    async def publish_due(self) -> bytes | None:
        """Sign now if it is time: records wait for one, or the last is `idle_interval` old."""
        now = self._clock.now()
        last = self._signed_at
        if self._tree.size > self._signed.size or self._latest is None:
            # A poll early, so no record waits longer than `interval` for its checkpoint.
            if last is None or now - last >= self._interval - dt.timedelta(seconds=self._poll):
                return await self.publish()
        elif last is None or now - last >= self._idle_interval:
            return await self.publish(resign=True)
        return None

    async def publish(self, *, resign: bool = False) -> bytes | None:
        """Sign and store a checkpoint of the tree now, unless it is signed already.

        `resign` signs the same tree again with a new timestamp: proof the writer is
        alive and its log still ends there.
        """
        async with self._publishing:
            if self._error is not None or self._signed_tree is None:
                return None
            tree = self._tree.copy()
            grown = tree.size - self._signed.size
            if not grown and self._latest is not None and not resign:
                return self._latest
            checkpoint = Checkpoint(self.origin, tree.size, tree.root())
            now = self._clock.now()
            signed = timestamped(checkpoint, self._signer, now)
            link = None
            if grown or self._latest is None:
                proof = (
                    consistency_proof_from(self._signed_tree, self._since[:grown])
                    if self._signed.size and grown
                    else ()
                )
                link = CheckpointLink(signed, proof, tree)
            await self._store.save(tree, signed, link)
            previous = self._signed.size
            self._signed, self._latest, self._signed_at = checkpoint, signed, now
            self._signed_tree, self._since = tree, self._since[grown:]
            if self._witnesses:
                known = {previous: link.proof} if link is not None else {}
                cosigned = await self._witnessed(signed, tree, known)
                if cosigned != signed:
                    await self._store.save(tree, cosigned, None)
                    self._latest = cosigned
            return self._latest

    async def _witnessed(
        self, signed: bytes, tree: CompactTree, known: dict[int, tuple[bytes, ...]]
    ) -> bytes:
        """`signed` with the cosignatures of every witness that gives one."""
        lines: list[Signature] = []
        for witness in self._witnesses:
            try:
                lines += await self._cosignatures(witness, signed, tree, known)
            except Exception as error:  # a witness away: the next checkpoint goes to it too
                logger.warning(
                    "Witness %s did not cosign %s at %d records: %s",
                    witness.url, self.origin, tree.size, error,
                )  # fmt: skip
        return add_signatures(signed, lines) if lines else signed

    async def _cosignatures(
        self,
        witness: WitnessClient,
        signed: bytes,
        tree: CompactTree,
        known: dict[int, tuple[bytes, ...]],
    ) -> list[Signature]:
        for _ in range(2):  # a 409 teaches the witness's size; one more try from there
            old = witness.known_size
            if old > tree.size:
                raise WitnessRefusal(
                    f"it cosigned {old} records of this log, more than this writer signed: "
                    "the log lost records or was forked"
                )
            proof = known.get(old)
            if proof is None:
                proof = await self._proof(old, tree)
                known[old] = proof
            reply = await witness.submit(Submission(old, proof, signed))
            if reply.status == 200:
                witness.known_size = tree.size
                return list(parse_note(signed + reply.body).signatures[-reply.body.count(b"\n") :])
            latest = reply.latest_size
            if latest is None or latest == old:
                raise WitnessRefusal(
                    f"{reply.status} {reply.body.decode(errors='replace').strip()}"
                )
            witness.known_size = latest
        raise WitnessRefusal(f"it keeps answering 409 (its latest: {witness.known_size})")

    async def _proof(self, old: int, tree: CompactTree) -> tuple[bytes, ...]:
        """The consistency proof from this log's checkpoint of `old` records to `tree`."""
        if old in (0, tree.size):
            return ()
        before = await self._store.tree_at(old)
        if before is None:
            raise WitnessRefusal(f"this writer never signed a checkpoint of {old} records")
        leaves = await self._store.leaves(old + 1, tree.size)
        return consistency_proof_from(before, leaves)

    async def _sign_while_writing(self) -> None:
        while True:
            await self._sleep(self._poll)
            try:
                await self.publish_due()
            except Exception as error:  # logged; the next round tries again
                logger.error("Cannot store a checkpoint of %s: %s", self.origin, error)

    def _stop(self, reason: str) -> None:
        if self._error is None:
            logger.error("No more checkpoints are signed for %s: %s", self.origin, reason)
            self._error = reason

    async def aclose(self) -> None:
        """Sign the last records (if it ever started), then release the store."""
        if self._task is None:  # never started: nothing of this tree may be signed
            await self._store.aclose()
            return
        # Never cancelled mid-publish: its store's thread would finish the save the task no
        # longer records, and the history would get the same tree size twice.
        async with self._publishing:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self.publish()
        except Exception as error:
            logger.error("Cannot store the last checkpoint of %s: %s", self.origin, error)
        finally:
            await self._store.aclose()
