"""What each `jitgate audit` subcommand was asked to do, as typed options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LogOptions:
    """Which log to read, and the key its MACs are checked with."""

    audit: str
    key_file: str | None

    @property
    def key_path(self) -> str | None:
        # --key-file (or JITGATE_KEY_FILE), else the writers' own JITGATE_AUDIT_KEY_FILE.
        return self.key_file or os.environ.get("JITGATE_AUDIT_KEY_FILE")


@dataclass(frozen=True)
class Filters:
    """The record filters; each tuple is any-of. `tail` has no time window."""

    user: tuple[str, ...]
    namespace: tuple[str, ...]
    type: tuple[str, ...]
    verb: tuple[str, ...]
    grant: tuple[str, ...]
    request: tuple[str, ...]
    writer: tuple[str, ...]
    pod: tuple[str, ...] = ()
    object: tuple[str, ...] = ()
    session: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class VerifyOptions:
    log: LogOptions
    writer: tuple[str, ...]
    save_heads: str | None
    expect_heads: str | None
    verifier_key: str | None
    witness_key: tuple[str, ...]
    min_cosignatures: int | None
    max_age: str | None


@dataclass(frozen=True)
class KeygenOptions:
    name: str
    out: str
    witness: bool


@dataclass(frozen=True)
class ReconcileOptions:
    log: LogOptions
    apiserver_audit: tuple[str, ...]
    namespace: tuple[str, ...]
    exempt_user: tuple[str, ...]
    exempt_group: tuple[str, ...]


@dataclass(frozen=True)
class WitnessOptions:
    key: str
    log_key: tuple[str, ...]
    state: str
    listen: str


@dataclass(frozen=True)
class ProveOptions:
    log: LogOptions
    record: str
    out: str | None


@dataclass(frozen=True)
class VerifyProofOptions:
    proof: str
    verifier_key: str


@dataclass(frozen=True)
class QueryOptions:
    log: LogOptions
    filters: Filters
    output: Literal["table", "json", "csv"]
    limit: int | None


@dataclass(frozen=True)
class ExportOptions:
    log: LogOptions
    filters: Filters
    format: Literal["jsonl", "csv", "asciicast"]
    out: str | None


@dataclass(frozen=True)
class SessionsOptions:
    log: LogOptions
    filters: Filters
    output: Literal["table", "json"]


@dataclass(frozen=True)
class ReplayOptions:
    log: LogOptions
    session: str
    speed: float
    max_idle: float | None


@dataclass(frozen=True)
class TailOptions:
    log: LogOptions
    filters: Filters
    lines: int
    follow: bool
    interval: str
    max_records: int | None
    for_: str | None
    output: Literal["line", "json"]


@dataclass(frozen=True)
class ReportOptions:
    log: LogOptions
    since: str
    until: str | None
    business_hours: str
    business_days: str
    timezone: str
    repeat_threshold: int
    burst_threshold: int
    burst_window: str
    output: Literal["table", "json"]
    fail_on_findings: bool


@dataclass(frozen=True)
class PruneOptions:
    log: LogOptions
    writer: str
    checkpoint_key: str | None
    dry_run: bool


@dataclass(frozen=True)
class HoldOptions:
    log: LogOptions
    reason: str
    writer: str
    checkpoint_key: str | None
