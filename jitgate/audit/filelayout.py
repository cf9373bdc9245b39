"""On-disk layout of a file audit log, shared by the writer and the readers.

<root>/LEGAL_HOLD                       optional: while present, nothing is pruned
<root>/<writer>/<first-seq>.jsonl      segments, 20-digit names so text order = seq order
<root>/<writer>/HEAD                   the last durable record (seq, hash): a witness
<root>/<writer>/.lock                  held by the one process writing this chain
<root>/<writer>/CHECKPOINT             with a checkpoint key: the last signed checkpoint
<root>/<writer>/TREE                   ... and the Merkle tree state it was signed from
<root>/<writer>/CHECKPOINTS            ... and every tree size signed, each linked to the one
                                       before by a consistency proof (JSON lines, appended)
<root>/<writer>/PRUNED                 once pruned: a copy of the pruning record(s) that account
                                       for where the log starts, so `verify` and `prove` know the
                                       pruned prefix's tree state before reading the segments
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from jitgate.audit.errors import AuditConfigError

SEGMENT: Final = re.compile(r"^(\d{20})\.jsonl$")
HEAD_FILE: Final = "HEAD"
LOCK_FILE: Final = ".lock"
HOLD_FILE: Final = "LEGAL_HOLD"
CHECKPOINT_FILE: Final = "CHECKPOINT"
TREE_FILE: Final = "TREE"
HISTORY_FILE: Final = "CHECKPOINTS"
PRUNED_FILE: Final = "PRUNED"
TEMPORARY_SUFFIX: Final = ".tmp"  # written, then renamed over the file it replaces
# What belongs in a writer's directory besides its segments.
WRITER_FILES: Final = frozenset(
    {HEAD_FILE, LOCK_FILE, HISTORY_FILE}
    | {
        name + suffix
        for name in (CHECKPOINT_FILE, TREE_FILE, PRUNED_FILE)
        for suffix in ("", TEMPORARY_SUFFIX)
    }
)
HEAD_SIZE: Final = 512
WRITER_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# Present on many volumes; never ours.
# Not writers: a file system's own, and what a webhook replica witnessing its peers cosigned,
# kept beside the logs on its volume (the chart's --witness-state).
IGNORED: Final = frozenset({"lost+found", ".witness"})
_TAIL_CHUNK: Final = 64 * 1024


def check_writer_id(writer: str) -> str:
    if not WRITER_ID.match(writer):
        raise AuditConfigError(
            f"audit writer id {writer!r} must be letters, digits, '.', '_' or '-' "
            "(a pod name works)"
        )
    return writer


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.jsonl"


@dataclass(frozen=True)
class SegmentFile:
    first_seq: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def list_segments(writer_dir: Path) -> tuple[list[SegmentFile], list[Path]]:
    """Segments in seq order, and any file that has no business being there."""
    segments: list[SegmentFile] = []
    strays: list[Path] = []
    for path in writer_dir.iterdir():
        match = SEGMENT.match(path.name)
        if match and path.is_file():
            segments.append(SegmentFile(int(match.group(1)), path))
        elif path.name not in WRITER_FILES:
            strays.append(path)
    segments.sort(key=lambda segment: segment.first_seq)
    return segments, sorted(strays)


def list_writers(root: Path) -> tuple[list[str], list[Path]]:
    writers: list[str] = []
    strays: list[Path] = []
    for path in root.iterdir():
        if path.name in IGNORED or path.name == HOLD_FILE:
            continue
        if path.is_dir() and WRITER_ID.match(path.name):
            writers.append(path.name)
        else:
            strays.append(path)
    return sorted(writers), sorted(strays)


def _last_newline(file: BinaryIO, end: int) -> int:
    """Offset of the last newline before `end`, or -1."""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        file.seek(start)
        found = file.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found
        end = start
    return -1


def tail(path: Path) -> tuple[int, bytes | None]:
    """(end of the last complete line, that line without its newline) of a segment.

    Everything after the returned offset is a torn write; None means no complete line.
    """
    with path.open("rb") as file:
        newline = _last_newline(file, file.seek(0, os.SEEK_END))
        if newline < 0:
            return 0, None
        begin = _last_newline(file, newline) + 1
        file.seek(begin)
        return newline + 1, file.read(newline - begin)


def first_line(path: Path) -> bytes | None:
    with path.open("rb") as file:
        line = file.readline()
    return line if line.endswith(b"\n") else None


def parse_record(line: bytes | None) -> dict[str, Any] | None:
    if line is None:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def encode_head(writer: str, seq: int, hash_: str, time: str) -> bytes:
    """Fixed-size, so it is rewritten in place with one pwrite and never reads half-old."""
    text = json.dumps(
        {"writer": writer, "seq": seq, "hash": hash_, "time": time}, sort_keys=True
    ).encode()
    return text.ljust(HEAD_SIZE - 1) + b"\n"


def read_head(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Open-file-description locks: per open file, so a reader in the same process (tests, the
# CLI next to a writer) can ask without stealing or dropping the writer's lock.
def _flock(kind: int) -> bytes:
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def try_lock(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK))
    except BlockingIOError:
        return False
    except PermissionError:  # some systems say EACCES for a held lock
        return False
    return True


def is_locked(path: Path) -> bool:
    """Whether a live writer holds this chain's lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_RDLCK))
    except OSError:
        return False
    finally:
        os.close(fd)
    kind: int = struct.unpack("hhqqi4x", answer)[0]
    return kind != fcntl.F_UNLCK
