"""The audit writer: chains events and makes them durable with group commit.

`append()` returns only once the record is stored (fsync'd or committed). While one
batch is being stored, new appends queue up; the next batch is whatever queued, so a
lone append pays one fsync and sixty-four concurrent ones share a handful.

A record is in the log if and only if its `append()` returned: a batch that fails is taken
back out of storage before its appends raise, and the chain goes on from the last record
that was acknowledged. (A crash can still leave a tail that was written but never
acknowledged; there is no process left to take it back.)

A sink that reports outcomes to a callback (the file sink) gets each next batch from the
callback acknowledging the one before (`_pump`), so the disk does not wait for the event
loop to get round to this writer's task between two batches.

With a `Checkpointer`, every stored record also becomes a leaf of the writer's Merkle
tree, and signed checkpoints of it are published (see `checkpointer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, NamedTuple

from jitgate.audit.chain import (
    GENESIS,
    PRUNED,
    RECOVERED,
    SEALED,
    ChainHead,
    Linked,
    link,
    link_at,
)
from jitgate.audit.checkpointer import Checkpointer
from jitgate.audit.errors import AuditWriteError
from jitgate.audit.model import AuditRecord
from jitgate.audit.sink import HandsOffWrites, Sink
from jitgate.audit.tlog import linked_leaf
from jitgate.core.clock import Clock
from jitgate.core.events import AuditEvent

logger = logging.getLogger("jitgate.audit")

DEFAULT_MAX_BATCH: Final = 1024
RETRY_BROKEN: Final = 5.0  # seconds between recovery attempts of an unhealthy writer


class _Stopped(NamedTuple):
    """Why a pump stopped: a failed batch (with its error), or a segment due to be sealed
    after the last batch (decided as that batch was acknowledged), or neither."""

    failed: tuple[list[_Pending], Exception] | None = None
    seal: Mapping[str, Any] | None = None  # the seal's record body, timed then


class _Pending(NamedTuple):  # a tuple: one per append, built on the hot path
    event: AuditEvent
    body: Mapping[str, Any]
    future: asyncio.Future[AuditRecord]


class AuditWriter:
    """One writer's chain. Create it with `open_audit_writer()`; use from one event loop."""

    def __init__(
        self,
        sink: Sink,
        *,
        writer_id: str,
        key: bytes | None,
        clock: Clock,
        max_batch: int = DEFAULT_MAX_BATCH,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.writer_id = writer_id
        self._sink = sink
        self._key = key
        self._clock = clock
        self._max_batch = max_batch
        self._checkpointer = checkpointer
        self._head: ChainHead | None = None
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()  # one batch, seal or recovery at a time
        self._waiting_for_io = 0  # others than the flusher: it stops pumping for them
        self._write_soon = sink.write_soon if isinstance(sink, HandsOffWrites) else None
        self._maintaining = asyncio.Lock()
        self._maintenance: asyncio.Task[None] | None = None
        self._broken: AuditWriteError | None = None
        self._closed = False

    # -- state the webhook's /readyz and metrics look at ----------------------------

    @property
    def healthy(self) -> bool:
        """False after a failed write until a later write succeeds, and once closed."""
        return self._broken is None and not self._closed

    @property
    def last_error(self) -> AuditWriteError | None:
        return self._broken

    @property
    def head(self) -> ChainHead | None:
        return self._head

    @property
    def description(self) -> str:
        return self._sink.description

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The Merkle tree and signed checkpoints, when a checkpoint key is configured."""
        return self._checkpointer

    # -- life cycle ---------------------------------------------------------------------

    async def start(self, maintenance_interval: float | None = None) -> None:
        state = await self._sink.open()
        self._head = state.head
        if self._checkpointer is not None:
            await self._checkpointer.start(state.head)
        if state.repaired is not None:
            logger.warning(
                "Audit log of writer %s was repaired on open: %s",
                self.writer_id,
                dict(state.repaired),
            )
            async with self._io:
                try:
                    await self._store_own(RECOVERED, {"repaired": dict(state.repaired)})
                except Exception as error:
                    raise await self._failed(error) from error
        if maintenance_interval is not None:
            self._maintenance = asyncio.create_task(
                self._maintain_every(maintenance_interval),
                name=f"audit-maintenance-{self.writer_id}",
            )

    async def aclose(self) -> None:
        """Finish queued appends, then release the sink. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await self.settled()
        async with self._io:
            try:
                if self._checkpointer is not None:
                    await self._checkpointer.aclose()
            finally:
                await self._sink.aclose()

    async def __aenter__(self) -> AuditWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- appending ----------------------------------------------------------------------

    async def append(self, event: AuditEvent) -> AuditRecord:
        """Chain `event` and return its record once durable; `AuditWriteError` if not."""
        return await self.submit(event)

    def submit(self, event: AuditEvent) -> asyncio.Future[AuditRecord]:
        """Queue `event` now, in call order, and return the future of its durable record.

        For a caller whose records must be chained in the order it produced them while
        several are being stored (a session's chunks): `append` queues only when awaited.
        """
        if self._closed:
            raise AuditWriteError(f"the audit writer {self.writer_id} is closed")
        body = event.body(self._clock.now())
        future: asyncio.Future[AuditRecord] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(event, body, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name=f"audit-flush-{self.writer_id}")
        return future

    async def settled(self) -> None:
        """Wait until every queued append, and a seal due after them, is stored or failed."""
        while (flusher := self._flusher) is not None and not flusher.done():
            await asyncio.gather(flusher, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            while self._queue:
                async with self._io:
                    if self._write_soon is not None and self._broken is None:
                        await self._pump()
                    else:
                        await self._commit(self._take())
        finally:
            self._flusher = None

    def _take(self) -> list[_Pending]:
        batch = self._queue[: self._max_batch]
        del self._queue[: len(batch)]
        return batch

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        try:
            if self._broken is not None:
                await self._recover()
            linked, accepted, head = self._link(batch)
            await self._sink.write(linked)
        except Exception as error:
            failure = await self._failed(error)
            self._tell(failure, [*batch, *self._queue])
            self._queue.clear()
            return
        self._acknowledge(linked, accepted, head)
        await self._seal_if_due()

    async def _pump(self) -> None:
        """Store what is queued, batch after batch, through a sink that hands its outcome
        straight to a callback (`HandsOffWrites`): each next batch goes to the disk from the
        callback that acknowledges the one before, in the same event-loop turn. Through this
        task it would wait for two more turns (the outcome's, then this task's), each behind
        every review that became ready meanwhile, with the disk idle and the reviews waiting
        for it too (the webhook at 16 connections: 1.1 ms from a batch handed over to this
        task resumed, of which 0.34 ms writing and syncing).

        Stops when the queue is empty, when a segment is due to be sealed, when someone else
        waits for the sink (maintenance), or on a failed batch, which is handled here as
        `_commit` handles it.
        """
        stopped: asyncio.Future[_Stopped] = asyncio.get_running_loop().create_future()
        self._hand_on(stopped)
        outcome = await stopped
        if outcome.failed is not None:
            batch, error = outcome.failed
            failure = await self._failed(error)
            self._tell(failure, [*batch, *self._queue])
            self._queue.clear()
        elif outcome.seal is not None:
            try:
                await self._store_body(outcome.seal, end_segment=True)
            except Exception as error:
                await self._failed(error)

    def _hand_on(self, stopped: asyncio.Future[_Stopped]) -> None:
        """Link the next batch and hand it to the sink; `stopped` says when nothing is."""
        assert self._write_soon is not None
        batch = self._take()
        try:
            linked, accepted, head = self._link(batch)
            if not linked:  # every one of them failed alone (`_link`)
                self._stored(stopped, batch, [], [], head, None)
                return
            self._write_soon(
                linked, functools.partial(self._stored, stopped, batch, linked, accepted, head)
            )
        except Exception as error:
            stopped.set_result(_Stopped(failed=(batch, error)))

    def _stored(
        self,
        stopped: asyncio.Future[_Stopped],
        batch: list[_Pending],
        linked: list[Linked],
        accepted: list[_Pending],
        head: ChainHead | None,
        error: Exception | None,
    ) -> None:
        """The sink's outcome for `batch`, on the event loop: acknowledge it and go on."""
        if error is None:
            try:
                self._acknowledge(linked, accepted, head)
            except BaseException as failure:  # a bug: end the pump as it would end _flush
                if not stopped.done():
                    stopped.set_exception(failure)
                raise
        if stopped.done():  # the pump was cancelled (the loop is closing): hand on nothing
            return
        if error is not None:
            stopped.set_result(_Stopped(failed=(batch, error)))
        elif (seal := self._sink.rotation_due(self._clock.now())) is not None:
            stopped.set_result(_Stopped(seal=self._seal_body(seal)))
        elif not self._queue or self._waiting_for_io:
            stopped.set_result(_Stopped())
        else:
            self._hand_on(stopped)

    def _link(
        self, batch: Sequence[_Pending]
    ) -> tuple[list[Linked], list[_Pending], ChainHead | None]:
        """`batch` chained onto the head: the records, the appends they are for (one whose
        event cannot be encoded fails alone) and the head after them."""
        head = self._head
        seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
        linked: list[Linked] = []
        accepted: list[_Pending] = []
        for pending in batch:
            try:
                stored = link_at(
                    pending.body, writer=self.writer_id, seq=seq + 1, prev=prev, key=self._key
                )
            except ValueError as error:  # NaN and the like: the caller's bug, fail it alone
                if not pending.future.done():
                    pending.future.set_exception(error)
                continue
            linked.append(stored)
            accepted.append(pending)
            seq += 1
            prev = stored.record["hash"]
        if linked:
            head = ChainHead(seq, prev)
        return linked, accepted, head

    def _acknowledge(
        self, linked: list[Linked], accepted: list[_Pending], head: ChainHead | None
    ) -> None:
        """`linked` is stored: move the head, add the leaves, answer the appends."""
        self._head = head
        leaves = [linked_leaf(stored) for stored in linked]
        if self._checkpointer is not None:
            self._checkpointer.add(linked, leaves)
        for pending, done, leaf in zip(accepted, linked, leaves, strict=True):
            if not pending.future.done():
                pending.future.set_result(AuditRecord.of_event(pending.event, done.record, leaf))

    async def _seal_if_due(self) -> None:
        seal = self._sink.rotation_due(self._clock.now())
        if seal is not None:
            try:
                await self._seal(seal)
            except Exception as error:
                await self._failed(error)

    async def _failed(self, error: Exception) -> AuditWriteError:
        """Mark the writer unhealthy and take the failed write back out of storage.

        Before anyone is told: an append that raises must not leave its record behind.
        If it cannot be taken back now, it is on every recovery, which fails until it is.
        """
        failure = (
            error
            if isinstance(error, AuditWriteError)
            else AuditWriteError(f"cannot write to the {self._sink.description}: {error}")
        )
        if failure is not error:
            failure.__cause__ = error
        logger.error("Audit writer %s is unhealthy: %s", self.writer_id, failure)
        try:
            await self._sink.discard()
        except Exception as discard_error:
            logger.error(
                "Audit writer %s cannot take the failed write back yet, and stays unhealthy "
                "until it can: %s",
                self.writer_id,
                discard_error,
            )
        # Only now, so that whoever sees the writer unhealthy finds the failed write gone.
        self._broken = failure
        return failure

    @staticmethod
    def _tell(failure: AuditWriteError, waiting: Sequence[_Pending]) -> None:
        for pending in waiting:
            if not pending.future.done():
                pending.future.set_exception(failure)

    async def _recover(self) -> None:
        """Cut storage back to the last acknowledged record and say so in the chain."""
        assert self._broken is not None
        acknowledged = self._head
        state = await self._sink.recover()
        context: dict[str, Any] = {"error": str(self._broken)}
        repaired = dict(state.repaired or {})
        stored = state.head.seq if state.head else 0
        acked = acknowledged.seq if acknowledged else 0
        if stored > acked:
            # Stored by a write that reported failure (a commit whose answer was lost) and
            # beyond taking back: the chain has to go on from them, saying they were never
            # acknowledged, so nobody reads them as actions that happened.
            context["unacknowledged"] = {"from": acked + 1, "to": stored}
            logger.error(
                "Audit log of writer %s keeps records %d-%d of a failed write; they were never "
                "acknowledged and are marked so",
                self.writer_id,
                acked + 1,
                stored,
            )
        elif stored == acked and state.head != acknowledged:
            raise AuditWriteError(
                f"the {self._sink.description} ends at seq {stored} with another record than "
                "the one acknowledged; run `jitgate audit verify`"
            )
        elif stored < acked and "missing" not in repaired:
            repaired["missing"] = {"from": stored + 1, "to": acked}
        if repaired:
            context["repaired"] = repaired
        self._head = state.head
        if self._checkpointer is not None:
            await self._checkpointer.resync(state.head)
        try:
            await self._store_own(RECOVERED, context)
        except BaseException:
            self._head = acknowledged  # so the next recovery says all of this again
            raise
        logger.warning("Audit writer %s recovered after: %s", self.writer_id, self._broken)
        self._broken = None

    async def _seal(self, context: Mapping[str, Any]) -> None:
        """End the segment with a record carrying the chain head it closes on."""
        await self._store_body(self._seal_body(context), end_segment=True)

    def _seal_body(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The seal's record body as of now (`_seal`)."""
        assert self._head is not None
        head = {"lastSeq": self._head.seq, "head": self._head.hash}
        event = AuditEvent(type=SEALED, context={**context, **head})
        return event.body(self._clock.now())

    async def _store_own(self, kind: str, context: Mapping[str, Any]) -> None:
        """Store one of the writer's own records (recovery) outside the queue."""
        event = AuditEvent(type=kind, context=dict(context))
        await self._store_body(event.body(self._clock.now()))

    async def _store_body(self, body: Mapping[str, Any], *, end_segment: bool = False) -> None:
        stored = link(body, writer=self.writer_id, head=self._head, key=self._key)
        await self._sink.write([stored], end_segment=end_segment)
        self._head = stored.head
        if self._checkpointer is not None:
            self._checkpointer.add([stored], [linked_leaf(stored)])

    # -- rotation and retention ---------------------------------------------------------

    async def maintain(self) -> None:
        """Recover from a failed write, seal a segment due by age, prune past retention.

        Recovering here, not only on the next append, matters: an unready webhook gets no
        requests, so it would otherwise never append again to find the log writable.
        """
        async with self._maintaining:
            async with self._turn():
                if self._broken is not None:
                    try:
                        await self._recover()
                    except Exception as error:
                        raise await self._failed(error) from error
                seal = self._sink.rotation_due(self._clock.now())
                if seal is not None and self._broken is None:
                    try:
                        await self._seal(seal)
                    except Exception as error:
                        raise await self._failed(error) from error
            plan = await self._sink.prune_plan(self._clock.now())
            if plan is None:
                return
            # The pruning record must be durable before anything is deleted, so a verifier
            # can always tell pruning from deletion.
            record = await self.append(AuditEvent(type=PRUNED, context=dict(plan.context)))
            await self._sink.prune(plan, record.seq)
            logger.info(
                "Audit writer %s pruned %d segment(s) past retention",
                self.writer_id,
                len(plan.victims),
            )

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The sink to oneself, after the batch being stored (a pump stops for it)."""
        self._waiting_for_io += 1
        try:
            await self._io.acquire()
        finally:
            self._waiting_for_io -= 1
        try:
            yield
        finally:
            self._io.release()

    async def _maintain_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval if self._broken is None else min(interval, RETRY_BROKEN))
            try:
                await self.maintain()
            except Exception as error:  # logged; the next round tries again
                logger.error("Audit maintenance of writer %s failed: %s", self.writer_id, error)
