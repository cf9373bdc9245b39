"""Opening an audit log by URL, for writing (operator, webhook) or reading (CLI)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from jitgate.audit.checkpointer import (
    DEFAULT_IDLE_INTERVAL,
    DEFAULT_INTERVAL,
    Checkpointer,
    CheckpointStore,
)
from jitgate.audit.errors import AuditConfigError
from jitgate.audit.filelayout import check_writer_id
from jitgate.audit.model import AuditRecord
from jitgate.audit.note import Signer
from jitgate.audit.reader import LogReader
from jitgate.audit.sink import Sink
from jitgate.audit.url import FileTarget, PostgresTarget, parse_audit_url
from jitgate.audit.witnessclient import WitnessClient, other_witnesses, peer_tls
from jitgate.audit.writer import DEFAULT_MAX_BATCH, AuditWriter
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.events import AuditEvent


def default_writer_id() -> str:
    """The pod name (`POD_NAME`, else the host name, which Kubernetes sets to it)."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def _sink(url: str, writer_id: str, clock: Clock, append_process: bool) -> Sink:
    target = parse_audit_url(url)
    if isinstance(target, FileTarget):
        from jitgate.audit.filesink import FileSink

        return FileSink(target, writer_id, clock, append_process=append_process)
    from jitgate.audit.pgsink import PostgresSink

    return PostgresSink(target, writer_id, clock)


def _witness_clients(
    urls: Sequence[str], writer_id: str, witness_ca: Path | None
) -> list[WitnessClient]:
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AuditConfigError(f"a witness is an http:// or https:// URL, not {url!r}")
    try:
        tls = peer_tls(witness_ca) if witness_ca is not None else None
    except (OSError, ssl.SSLError) as error:
        raise AuditConfigError(f"cannot read the witness CA {witness_ca}: {error}") from error
    return [WitnessClient(url, tls=tls) for url in other_witnesses(urls, writer_id)]


def _checkpointer(
    url: str,
    writer_id: str,
    key: Signer,
    interval: float,
    idle_interval: float,
    clock: Clock,
    witnesses: Sequence[str],
    witness_ca: Path | None,
    sleep: Callable[[float], Awaitable[None]],
) -> Checkpointer:
    target = parse_audit_url(url)
    store: CheckpointStore
    if isinstance(target, FileTarget):
        from jitgate.audit.filecheckpoints import FileCheckpointStore

        store = FileCheckpointStore(target.root / writer_id)
    else:
        from jitgate.audit.pgcheckpoints import PostgresCheckpointStore

        store = PostgresCheckpointStore(target, writer_id)
    return Checkpointer(
        store,
        key=key,
        writer_id=writer_id,
        interval=interval,
        idle_interval=idle_interval,
        clock=clock,
        witnesses=_witness_clients(witnesses, writer_id, witness_ca),
        sleep=sleep,
    )


class OpeningWriter:
    """Await it for a writer, or use it as `async with` to have the writer closed after."""

    def __init__(self, open_writer: Any) -> None:
        self._open_writer = open_writer
        self._writer: AuditWriter | None = None

    def __await__(self) -> Generator[Any, None, AuditWriter]:
        return self._open_writer().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> AuditWriter:
        self._writer = await self._open_writer()
        return self._writer

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            await self._writer.aclose()


def open_audit_writer(
    url: str,
    *,
    writer_id: str,
    key: bytes | None = None,
    clock: Clock = SYSTEM_CLOCK,
    max_batch: int = DEFAULT_MAX_BATCH,
    maintenance_interval: float | None = 60.0,
    checkpoint_key: Signer | None = None,
    checkpoint_interval: float = DEFAULT_INTERVAL,
    checkpoint_idle_interval: float = DEFAULT_IDLE_INTERVAL,
    witnesses: Sequence[str] = (),
    witness_ca: Path | None = None,
    checkpoint_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    append_process: bool = False,
) -> OpeningWriter:
    """Open (or continue) `writer_id`'s chain in the log at `url`.

    `await open_audit_writer(...)` gives an `AuditWriter` to `aclose()`;
    `async with open_audit_writer(...) as writer:` closes it on exit. `max_batch=1`
    turns group commit off (one fsync per append). `maintenance_interval` seconds between
    age-based rotation and retention checks; None leaves them to `writer.maintain()`.
    With `checkpoint_key` the writer keeps a Merkle tree over its
    records and signs a checkpoint at most `checkpoint_interval` seconds after a write,
    and again every `checkpoint_idle_interval` seconds without one (times by `clock`), and
    submits each to the `witnesses` (c2sp.org/tlog-witness submission URLs) for cosignatures:
    https:// ones checked against `witness_ca` if given (`witnessclient.peer_tls`), a URL
    naming this writer skipped (`witnessclient.other_witnesses`: replicas share one list).
    The checkpointer waits between its polls of `clock` with `checkpoint_sleep` (tests pass
    one they release, with a manual clock). With `append_process` a file log's batches of two
    records or more are written and synced by a process of its own (`appendproc`), not a
    thread of this one: for a busy event loop (the webhook's), whose GIL that thread would
    contend for.
    """
    check_writer_id(writer_id)
    if witnesses and checkpoint_key is None:
        raise AuditConfigError("witnesses cosign checkpoints: they need a checkpoint key")
    if key is not None and not key:
        raise AuditConfigError("the audit key is empty")
    checkpointer = (
        _checkpointer(
            url,
            writer_id,
            checkpoint_key,
            checkpoint_interval,
            checkpoint_idle_interval,
            clock,
            witnesses,
            witness_ca,
            checkpoint_sleep,
        )
        if checkpoint_key is not None
        else None
    )
    sink = _sink(url, writer_id, clock, append_process)

    async def open_writer() -> AuditWriter:
        writer = AuditWriter(
            sink,
            writer_id=writer_id,
            key=key,
            clock=clock,
            max_batch=max_batch,
            checkpointer=checkpointer,
        )
        try:
            await writer.start(maintenance_interval)
        except BaseException:
            await writer.aclose()
            raise
        return writer

    return OpeningWriter(open_writer)


async def append_one(
    url: str,
    event: AuditEvent,
    *,
    writer_id: str,
    key: bytes | None,
    checkpoint_key: Signer | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuditRecord:
    """Append one event to `writer_id`'s chain and close it (an admin's or the pruner's
    record, from the command line); durable, and signed for with a checkpoint key, on return."""
    async with open_audit_writer(
        url,
        writer_id=writer_id,
        key=key,
        clock=clock,
        checkpoint_key=checkpoint_key,
        maintenance_interval=None,
    ) as writer:
        return await writer.append(event)


def open_log_reader(url: str) -> LogReader:
    """A reader for verify, query, export, tail and report; raises AuditReadError."""
    target = parse_audit_url(url)
    if isinstance(target, PostgresTarget):
        from jitgate.audit.pgreader import PostgresLogReader

        return PostgresLogReader(target)
    from jitgate.audit.filereader import FileLogReader

    return FileLogReader(target)
