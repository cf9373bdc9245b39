"""A file audit log as it lies on disk, read back without jitgate's readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def stored_records(log_dir: Path, writer: str = "w0") -> list[dict[str, Any]]:
    """Every record in `writer`'s segments under `log_dir`, in order, as parsed JSON."""
    records: list[dict[str, Any]] = []
    for segment in sorted((log_dir / writer).glob("*.jsonl")):
        records += [json.loads(line) for line in segment.read_bytes().splitlines()]
    return records
