"""Audit log locations: `file:///dir?options` or `postgresql://...?table=name&options`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from jitgate.audit.errors import AuditConfigError
from jitgate.audit.timefmt import parse_span

DEFAULT_TABLE = "jitgate_audit"
# Leaves room for the `_schema_version` and `_heads` companions within 63 characters.
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_SIZE = re.compile(r"^(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class FileTarget:
    """A directory of per-writer segment files."""

    root: Path
    segment_size: int = 64 * 1024**2
    segment_age: dt.timedelta = dt.timedelta(days=1)
    retention: dt.timedelta | None = None
    legal_hold: bool = False

    def describe(self) -> str:
        return f"audit directory {self.root}"


@dataclass(frozen=True)
class PostgresTarget:
    """One append-only table per deployment; `conninfo` is the URL without jitgate's options.

    `retention` and `partition` are the table's settings as its owner sets them (None: as
    they are); `retention=forever` is `keep_forever`.
    """

    conninfo: str
    table: str = DEFAULT_TABLE
    retention: dt.timedelta | None = None
    keep_forever: bool = False
    partition: str | None = None

    def describe(self) -> str:
        parts = urllib.parse.urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        where = f"{host}:{parts.port}" if parts.port else host
        database = parts.path.lstrip("/") or "(default database)"
        return f"PostgreSQL table {self.table} at {where}/{database}"


Target = FileTarget | PostgresTarget


def parse_size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise AuditConfigError(f"{text!r} is not a size such as 64MiB or 1048576")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _flag(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise AuditConfigError(f"audit URL option {name}={text!r} must be true or false")


def _span(name: str, text: str) -> dt.timedelta:
    try:
        return parse_span(text)
    except ValueError as error:
        raise AuditConfigError(f"audit URL option {name}: {error}") from error


def _file_target(parts: urllib.parse.SplitResult) -> FileTarget:
    if parts.netloc not in ("", "localhost"):
        raise AuditConfigError(
            f"file audit URLs need an absolute path (file:///var/lib/jitgate/audit), "
            f"not a host {parts.netloc!r}"
        )
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        raise AuditConfigError(f"the audit directory {path!r} must be an absolute path")
    target = FileTarget(root=Path(path))
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name == "segment_size":
            target = dataclasses.replace(target, segment_size=parse_size(value))
        elif name == "segment_age":
            target = dataclasses.replace(target, segment_age=_span(name, value))
        elif name == "retention":
            retention = None if value in ("", "forever") else _span(name, value)
            target = dataclasses.replace(target, retention=retention)
        elif name == "legal_hold":
            target = dataclasses.replace(target, legal_hold=_flag(name, value))
        else:
            raise AuditConfigError(
                f"unknown file audit URL option {name!r} "
                "(known: segment_size, segment_age, retention, legal_hold)"
            )
    return target


_POSTGRES_OPTIONS: Final = ("table", "retention", "partition")
PARTITION_PERIODS: Final = ("day", "month")


def _postgres_target(parts: urllib.parse.SplitResult) -> PostgresTarget:
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in _POSTGRES_OPTIONS}
    table = options.get("table", DEFAULT_TABLE)
    if not _TABLE.match(table):
        raise AuditConfigError(
            f"audit table name {table!r} must be lower-case letters, digits and underscores, "
            "at most 48 characters"
        )
    retention = options.get("retention")
    partition = options.get("partition")
    if partition is not None and partition not in PARTITION_PERIODS:
        raise AuditConfigError(
            f"audit URL option partition={partition!r} must be one of "
            f"{', '.join(PARTITION_PERIODS)}"
        )
    rest = urllib.parse.urlencode([(n, v) for n, v in query if n not in _POSTGRES_OPTIONS])
    return PostgresTarget(
        conninfo=urllib.parse.urlunsplit(parts._replace(query=rest)),
        table=table,
        retention=_span("retention", retention) if retention not in (None, "", "forever") else None,
        keep_forever=retention in ("", "forever"),
        partition=partition,
    )


def parse_audit_url(url: str) -> Target:
    """Parse an audit URL; a bare absolute path means a file log."""
    if not url:
        raise AuditConfigError("no audit log given; pass --audit URL or set JITGATE_AUDIT")
    if url.startswith("/"):
        url = "file://" + urllib.parse.quote(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return _file_target(parts)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres_target(parts)
    raise AuditConfigError(
        f"audit URL {url!r} is neither file:///path nor postgresql://...; "
        "see `jitgate audit --help`"
    )
