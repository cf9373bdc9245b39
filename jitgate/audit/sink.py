"""What the writer needs from a storage backend; sinks are thin adapters behind it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from jitgate.audit.chain import ChainHead, Linked


@dataclass(frozen=True)
class SinkState:
    """Where the chain stands in storage, and what opening it had to repair (if anything)."""

    head: ChainHead | None
    repaired: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PrunePlan:
    """Segments past retention: recorded in the chain first (`context`), deleted after."""

    context: Mapping[str, Any]
    victims: tuple[str, ...]


class Sink(Protocol):
    description: str

    async def open(self) -> SinkState:
        """Prepare storage and find the chain head, repairing a torn tail."""
        ...

    async def write(self, records: Sequence[Linked], *, end_segment: bool = False) -> None:
        """Store `records` durably (one fsync or one transaction) or raise.

        A write that raises must leave storage as if it had never been tried, or be taken
        back by `discard()`: its records were never acknowledged, so they must not stay.
        """
        ...

    async def discard(self) -> None:
        """After a failed write: take back whatever of it reached storage, or raise.

        Storage then ends at the last record of the last successful write again.
        Idempotent; a writer calls it as soon as a write fails, and again on `recover()`.
        """
        ...

    async def recover(self) -> SinkState:
        """After a failed write: `discard()` it, reopen and report what is really stored.

        Raises, leaving the writer unhealthy, if the failed write cannot be taken back. A
        head past the last successful write means records of a failed write stayed stored
        anyway (a commit whose answer was lost); the writer marks them unacknowledged.
        """
        ...

    def rotation_due(self, now: dt.datetime) -> Mapping[str, Any] | None:
        """The seal record's context if the current segment should be sealed now."""
        ...

    async def prune_plan(self, now: dt.datetime) -> PrunePlan | None: ...

    async def prune(self, plan: PrunePlan, seq: int) -> None:
        """Delete what `plan` prunes, once its pruning record (`seq`) is durable."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class HandsOffWrites(Protocol):
    """A sink that can also report a write's outcome to a plain callback on the event loop
    (the file sink's I/O thread): the writer then hands on the next batch in the same turn
    (`AuditWriter._pump`) instead of two turns later through its flushing task."""

    def write_soon(
        self, records: Sequence[Linked], then: Callable[[Exception | None], None]
    ) -> None:
        """Start `write(records)`; call `then(None)` once durable, `then(error)` if it failed
        (with the same error `write` raises), on the event loop, in call order."""
        ...
