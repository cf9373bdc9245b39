"""The hash chain: how a record is linked to its predecessor, hashed and signed.

Pure functions over JSON-ready dicts. Verification always hashes the record exactly as
it was stored (parsed JSON), never a re-serialised model, so no field can hide from it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jitgate.core.canonical import canonical_json, digest

FORMAT_VERSION: Final = 1
GENESIS: Final = "sha256:" + "0" * 64
UNHASHABLE: Final = "sha256:unhashable"
MAC_PREFIX: Final = "hmac-sha256:"
# Not covered by the hash: `hash` is the hash, and `mac` signs the hash.
UNHASHED: Final = frozenset({"hash", "mac"})

# Records the writer itself adds to its chain.
SEALED: Final = "audit.sealed"
PRUNED: Final = "audit.pruned"
RECOVERED: Final = "audit.recovered"


@dataclass(frozen=True)
class ChainHead:
    """The last record of a writer's chain: the next record's `seq - 1` and `prev`."""

    seq: int
    hash: str

    def next_seq(self) -> int:
        return self.seq + 1


@dataclass(frozen=True)
class Linked:
    """A record with its chain fields set, ready to store: the dict and its exact line."""

    record: Mapping[str, Any]
    line: bytes

    @property
    def seq(self) -> int:
        seq: int = self.record["seq"]
        return seq

    @property
    def hash(self) -> str:
        value: str = self.record["hash"]
        return value

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.hash)


def record_hash(record: Mapping[str, Any]) -> str:
    """`sha256:<hex>` over the canonical JSON of the record without `hash` and `mac`."""
    try:
        return digest({k: v for k, v in record.items() if k not in UNHASHED})
    except ValueError:
        # NaN or a lone surrogate, read from a forged line: nothing a writer ever hashed.
        return UNHASHABLE


def sign(record_hash: str, key: bytes) -> str:
    return (
        MAC_PREFIX
        + hmac.new(key, record_hash.encode(errors="surrogatepass"), hashlib.sha256).hexdigest()
    )


def mac_matches(record_hash: str, mac: object, key: bytes) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII text, and a forged MAC may hold some.
    if not isinstance(mac, str):
        return False
    expected = sign(record_hash, key).encode()
    return hmac.compare_digest(expected, mac.encode(errors="surrogatepass"))


def stored_form(record: Mapping[str, Any]) -> bytes:
    """How a record is stored: the canonical JSON that was hashed, then `hash` and `mac`.

    The bytes that were hashed are the stored line itself up to `,"hash":`, so a record
    is encoded once, not twice, on the hot path.
    """
    hashed = {k: v for k, v in record.items() if k not in UNHASHED}
    if not hashed:
        return canonical_json(record)
    tail = b"".join(
        b',"' + name.encode() + b'":' + canonical_json(record[name])
        for name in ("hash", "mac")
        if name in record
    )
    return canonical_json(hashed)[:-1] + tail + b"}"


def link(
    body: Mapping[str, Any], *, writer: str, head: ChainHead | None, key: bytes | None
) -> Linked:
    """Chain `body` (the event's own fields, `time` included) after `head`.

    Raises ValueError if the body holds something JSON cannot carry (NaN, lone surrogates).
    """
    record: dict[str, Any] = {k: v for k, v in body.items() if k not in UNHASHED}
    record["v"] = FORMAT_VERSION
    record["writer"] = writer
    record["seq"] = head.next_seq() if head else 1
    record["prev"] = head.hash if head else GENESIS
    hashed = canonical_json(record)
    record["hash"] = "sha256:" + hashlib.sha256(hashed).hexdigest()
    tail = b',"hash":"' + record["hash"].encode() + b'"'
    if key is not None:
        record["mac"] = sign(record["hash"], key)
        tail += b',"mac":"' + record["mac"].encode() + b'"'
    return Linked(record, hashed[:-1] + tail + b"}\n")
