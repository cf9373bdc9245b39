"""The hash chain: how a record is linked to its predecessor, hashed and signed.

Pure functions over JSON-ready dicts. Verification always hashes the record exactly as
it was stored (parsed JSON), never a re-serialised model, so no field can hide from it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

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
# Records an admin adds to its own chain when setting or releasing a legal hold.
HELD: Final = "audit.held"
RELEASED: Final = "audit.released"


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
    return MAC_PREFIX + hmac.digest(key, record_hash.encode(errors="surrogatepass"), "sha256").hex()


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
    return _stored(record, hashed, canonical_json(hashed))


def _stored(record: Mapping[str, Any], hashed: Mapping[str, Any], encoded: bytes) -> bytes:
    if not hashed:
        return canonical_json(record)
    tail = b"".join(
        b',"' + name.encode() + b'":' + canonical_json(record[name])
        for name in ("hash", "mac")
        if name in record
    )
    return encoded[:-1] + tail + b"}"


def hash_and_stored_form(
    record: Mapping[str, Any], line: bytes | None = None
) -> tuple[str, bytes | None]:
    """`record_hash(record)` and `stored_form(record)` (None if JSON cannot hold it), at once.

    `line` is the record as read from storage, without its newline. A writer stores
    canonical JSON whose bytes up to `,"hash":` are exactly the bytes it hashed, followed by
    nothing but `hash` and `mac`; when `line` is that, and those bytes hash to the stored
    `hash`, nothing needs encoding again: what makes `verify` fast. Anything else (a record
    read from a database, an edited line) is encoded from the parsed record, once.
    """
    if line is not None:
        stated = record.get("hash")
        cut = line.rfind(b',"hash":"')
        tail = _plain_tail(stated, record.get("mac", _ABSENT))
        if tail is not None and cut > 0 and line[cut:] == tail:
            computed = "sha256:" + hashlib.sha256(line[:cut] + b"}").hexdigest()
            if computed == stated:
                return computed, line
    hashed = {k: v for k, v in record.items() if k not in UNHASHED}
    try:
        encoded = canonical_json(hashed)
    except ValueError:
        return UNHASHABLE, None
    computed = "sha256:" + hashlib.sha256(encoded).hexdigest()
    try:
        return computed, _stored(record, hashed, encoded)
    except ValueError:  # an unencodable `mac`
        return computed, None


_ABSENT: Final = object()


def _plain(value: object) -> TypeGuard[str]:
    """Text JSON writes as it is, between quotes (no escapes)."""
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and not ('"' in value or "\\" in value)
    )


def _plain_tail(hash_: object, mac: object) -> bytes | None:
    """How a line ends after its hashed bytes, when `hash` and `mac` need no JSON escaping."""
    if not _plain(hash_):
        return None
    tail = b',"hash":"' + hash_.encode() + b'"'
    if mac is not _ABSENT:
        if not _plain(mac):
            return None
        tail += b',"mac":"' + mac.encode() + b'"'
    return tail + b"}"


def link(
    body: Mapping[str, Any], *, writer: str, head: ChainHead | None, key: bytes | None
) -> Linked:
    """Chain `body` (the event's own fields, `time` included) after `head`.

    Raises ValueError if the body holds something JSON cannot carry (NaN, lone surrogates).
    """
    if head is None:
        return link_at(body, writer=writer, seq=1, prev=GENESIS, key=key)
    return link_at(body, writer=writer, seq=head.seq + 1, prev=head.hash, key=key)


def link_at(
    body: Mapping[str, Any], *, writer: str, seq: int, prev: str, key: bytes | None
) -> Linked:
    """`link` after the record numbered `seq - 1` whose hash is `prev`: for a writer chaining
    a batch, without a `ChainHead` between each two of its records."""
    record = dict(body)
    record.pop("hash", None)  # UNHASHED
    record.pop("mac", None)
    record["v"] = FORMAT_VERSION
    record["writer"] = writer
    record["seq"] = seq
    record["prev"] = prev
    hashed = canonical_json(record)
    record["hash"] = record_hash = "sha256:" + hashlib.sha256(hashed).hexdigest()
    if key is None:
        return Linked(record, hashed[:-1] + b',"hash":"' + record_hash.encode() + b'"}\n')
    record["mac"] = mac = sign(record_hash, key)
    tail = b',"hash":"' + record_hash.encode() + b'","mac":"' + mac.encode() + b'"}\n'
    return Linked(record, hashed[:-1] + tail)
