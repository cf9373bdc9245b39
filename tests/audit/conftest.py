"""Fixtures for the audit log: logs on disk, a real PostgreSQL server, the CLI in-process."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import postgres as postgres_support

from jitgate.audit import Action, Actor, AuditEvent, AuditRecord, open_audit_writer
from jitgate.cli.jitgate.main import main
from jitgate.core.clock import ManualClock

KEY = b"k3y-for-the-jitgate-audit-tests-0123456789"
START = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # a Monday


# -- events ---------------------------------------------------------------------------


def sample_event(i: int) -> AuditEvent:
    """A realistic mix: requests, approvals, grants and admission decisions."""
    kind = (
        "request.created",
        "request.approval",
        "grant.created",
        "action.allowed",
        "action.allowed",
        "action.denied",
    )[i % 6]
    return AuditEvent(
        type=kind,
        actor=Actor(user=("alice", "bob", "carol")[i % 3], groups=("developers",)),
        namespace="prod",
        action=Action(
            verb="exec", resource="pods", name=f"web-{i % 4}", container="app", command=("sh",)
        ),
        request=f"fix-web-{i % 4}",
        grant=f"fix-web-{i % 4}-x7k2" if kind != "request.created" else None,
        admissionUID=str(uuid.UUID(int=i)) if kind.startswith("action.") else None,
        dryRun=False if kind.startswith("action.") else None,
        reason="INC-1234: worker stuck — ünïcode ok",
        context={"breakGlass": False, "n": i},
    )


async def write_log(
    url: str,
    count: int,
    *,
    writer_id: str = "w0",
    key: bytes | None = KEY,
    clock: ManualClock | None = None,
    step: dt.timedelta = dt.timedelta(minutes=1),
) -> list[AuditRecord]:
    """Append `count` sample events, one clock step apart, and close the writer."""
    clock = clock or ManualClock(START)
    records = []
    async with open_audit_writer(
        url, writer_id=writer_id, key=key, clock=clock, maintenance_interval=None
    ) as writer:
        for i in range(count):
            records.append(await writer.append(sample_event(i)))
            clock.advance(step)
    return records


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(KEY + b"\n")
    return path


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "audit"


@pytest.fixture
def file_url(log_dir: Path) -> str:
    return f"file://{log_dir}"


# -- the CLI --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def one_sentence_error(self) -> bool:
        lines = self.err.strip().splitlines()
        return len(lines) == 1 and lines[0].endswith(".")


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`jitgate audit ...` in-process: exit code, stdout and stderr."""

    def run(*argv: str | Path) -> Outcome:
        capsys.readouterr()
        try:
            code = main(["audit", *map(str, argv)])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Outcome(code, captured.out, captured.err)

    return run


# -- PostgreSQL -----------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    server: Any

    def url(self, table: str | None = None) -> str:
        base = self.server.url("audit", "jitgate")
        return f"{base}?table={table}" if table else base

    def admin(self) -> psycopg.Connection[Any]:
        """A superuser connection to the audit database: the attacker with DB access."""
        return psycopg.connect(self.server.url("audit", "postgres"), autocommit=True)

    def tamper(self, sql: str, *params: Any) -> None:
        """Run SQL as superuser with triggers off, as an attacker would."""
        with self.admin() as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(sql, params or None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    support = postgres_support
    reason = support.missing_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests need a local server: {reason}")
    server = support.PostgresServer().start()
    try:
        server.psql("CREATE ROLE jitgate LOGIN")
        server.psql("CREATE DATABASE audit OWNER jitgate")
        yield Postgres(server)
    finally:
        server.stop()


@pytest.fixture
def pg_table() -> str:
    return f"audit_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_url(postgres: Postgres, pg_table: str) -> str:
    return postgres.url(pg_table)


@pytest.fixture
def audit_key() -> bytes:
    return KEY


@pytest.fixture
def write() -> Callable[..., Awaitable[list[AuditRecord]]]:
    """`await write(url, count, key=..., writer_id=..., clock=...)`: a log of sample events."""
    return write_log


@pytest.fixture
def event() -> Callable[[int], AuditEvent]:
    return sample_event
