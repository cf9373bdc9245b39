"""What one direction of a SPDY/3.1 byte stream says about its streams: read, never altered.

kubectl port-forward speaks SPDY/3.1 to the kubelet, tunnelled through the WebSocket the
gateway relays (`SPDY/3.1+portforward.k8s.io`: each binary message carries the next bytes of
the SPDY connection, cut anywhere). `FrameReader` takes those bytes as they come and says, per
frame, what happened to which stream; the port-forward observer (`portforward`) makes
connections of it. Only what that needs is read (draft-mbelshe-httpbis-spdy-00, SPDY/3):

    control frame: 1 | version (15 bits) | type (16) | flags (8) | length (24) | payload
    data frame:    0 | stream id (31 bits)            | flags (8) | length (24) | payload

SYN_STREAM (1) opens a stream with a header block (stream id, associated id, priority, slot,
then the block); SYN_REPLY (2) and HEADERS (8) carry a block too (after the stream id); FIN
(flag 0x01 on SYN_STREAM, SYN_REPLY, HEADERS and DATA) ends the sender's half of a stream;
RST_STREAM (3) ends both halves; GOAWAY (7) ends the connection. Header blocks are
zlib-compressed with the SPDY/3 dictionary, in one compression context per direction: every
block of a direction is inflated in order, whoever it belongs to, or the next one is garbage.
SETTINGS, PING, WINDOW_UPDATE and unknown control types say nothing about who sent what and
are skipped (the spec says to ignore unknown types).

Bounded: a DATA payload is counted as it passes (never held, whatever its length); a control
frame is held whole, up to `MAX_CONTROL_BYTES`, and its header block inflated to at most
`MAX_HEADER_BYTES`. Anything else (another version, a control frame or header block beyond
the bounds, a header block that does not inflate or does not add up, a frame on stream 0)
raises `Malformed` and the reader is spent: its caller cannot know where the next frame starts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

VERSION: Final = 3
FLAG_FIN: Final = 0x01
SYN_STREAM: Final = 1
SYN_REPLY: Final = 2
RST_STREAM: Final = 3
GOAWAY: Final = 7
HEADERS: Final = 8

MAX_CONTROL_BYTES: Final = 64 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
_FRAME_HEADER: Final = 8

# The SPDY/3 header dictionary (spec §2.6.10.1): these names, each after its length as four
# bytes, then a run of common values.
_NAMES: Final = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status"
)
_MORE_NAMES: Final = ("200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie")
_LAST_NAMES: Final = ("keep-alive", "origin")
_VALUES: Final = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY: Final = (
    b"".join(
        len(name).to_bytes(4, "big") + name.encode()
        for name in (*_NAMES.split(" "), *_MORE_NAMES, *_LAST_NAMES)
    )
    + _VALUES.encode()
)


class Malformed(ValueError):
    """The bytes are not SPDY/3.1 as the gateway reads it; the message says what was wrong."""


@dataclass(frozen=True)
class Opened:
    """SYN_STREAM: a stream opened by this side, with its headers (names in lower case,
    several values of one name joined by NUL as on the wire); `fin`: nothing will follow."""

    stream: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class Data:
    """`size` payload bytes of a DATA frame on `stream` (a frame's payload may come in several
    pieces, as its bytes arrive); `fin` on the last piece of a frame with FIN. `head` holds
    the piece's first bytes (up to `FrameReader.keep`), for streams whose content matters."""

    stream: int
    size: int
    fin: bool
    head: bytes = b""


@dataclass(frozen=True)
class Finished:
    """SYN_REPLY or HEADERS with FIN: this side's half of `stream` ended without data."""

    stream: int


@dataclass(frozen=True)
class Reset:
    """RST_STREAM: `stream` ended in both directions, with SPDY's status code."""

    stream: int
    status: int


@dataclass(frozen=True)
class GoAway:
    """GOAWAY: this side ends the connection."""

    last_stream: int


Event = Opened | Data | Finished | Reset | GoAway


class FrameReader:
    """One direction of a SPDY connection: bytes in (cut anywhere), events out."""

    def __init__(self, *, keep: int = 0) -> None:
        self.keep = keep  # how many payload bytes a `Data` event carries in `head`
        self._inflater = zlib.decompressobj(zdict=DICTIONARY)
        self._header = bytearray()  # the frame header being read
        self._control = bytearray()  # a control frame's payload being gathered
        self._control_type = 0
        self._flags = 0
        self._data_stream = 0  # > 0 while a DATA payload is passing, else a control payload
        self._left = 0  # payload bytes of the current frame still to come
        self._broken: Malformed | None = None

    def feed(self, data: bytes) -> list[Event]:
        """The events `data` completes, in order; `Malformed` when it is not SPDY/3.1."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._feed(memoryview(data))
        except Malformed as error:
            self._broken = error
            raise

    @property
    def between_frames(self) -> bool:
        """No frame is half read (where a connection may end cleanly)."""
        return not self._header and self._left == 0

    def _feed(self, view: memoryview) -> list[Event]:
        events: list[Event] = []
        while view:
            if self._left == 0:  # a frame header
                need = _FRAME_HEADER - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) < _FRAME_HEADER:
                    break
                events.extend(self._start(bytes(self._header)))
                self._header.clear()
                continue
            piece, view = view[: self._left], view[self._left :]
            self._left -= len(piece)
            if self._data_stream:
                last = self._left == 0
                fin = last and bool(self._flags & FLAG_FIN)
                events.append(Data(self._data_stream, len(piece), fin, bytes(piece[: self.keep])))
                if last:
                    self._data_stream = 0
            else:
                self._control += piece
                if self._left == 0:
                    events.extend(self._control_frame())
        return events

    def _start(self, header: bytes) -> list[Event]:
        first = int.from_bytes(header[:4], "big")
        self._flags = header[4]
        length = int.from_bytes(header[5:8], "big")
        if first & 0x8000_0000:
            version = (first >> 16) & 0x7FFF
            if version != VERSION:
                raise Malformed(f"a control frame of SPDY version {version}, not {VERSION}")
            if length > MAX_CONTROL_BYTES:
                raise Malformed(
                    f"a control frame of {length} bytes (the gateway reads at most "
                    f"{MAX_CONTROL_BYTES})"
                )
            self._control_type = first & 0xFFFF
            self._left = length
            return self._control_frame() if length == 0 else []
        stream = first & 0x7FFF_FFFF
        if stream == 0:
            raise Malformed("a data frame on stream 0")
        if length == 0:
            return [Data(stream, 0, bool(self._flags & FLAG_FIN))]
        self._data_stream, self._left = stream, length
        return []

    def _control_frame(self) -> list[Event]:
        kind, payload, fin = self._control_type, bytes(self._control), bool(self._flags & FLAG_FIN)
        self._control_type = 0
        self._control.clear()
        if kind == SYN_STREAM:
            stream = _stream_id(payload, "SYN_STREAM", 10)
            return [Opened(stream, self._headers(payload[10:]), fin)]
        if kind in (SYN_REPLY, HEADERS):
            name = "SYN_REPLY" if kind == SYN_REPLY else "HEADERS"
            stream = _stream_id(payload, name, 4)
            self._headers(payload[4:])  # keeps the compression context in step
            return [Finished(stream)] if fin else []
        if kind == RST_STREAM:
            stream = _stream_id(payload, "RST_STREAM", 8)
            return [Reset(stream, int.from_bytes(payload[4:8], "big"))]
        if kind == GOAWAY:
            if len(payload) < 4:
                raise Malformed(f"a GOAWAY frame of {len(payload)} bytes")
            return [GoAway(int.from_bytes(payload[:4], "big") & 0x7FFF_FFFF)]
        return []

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflater.decompress(block, MAX_HEADER_BYTES + 1)
        except zlib.error as error:
            raise Malformed(f"a header block that does not inflate ({error})") from error
        if len(raw) > MAX_HEADER_BYTES or self._inflater.unconsumed_tail:
            raise Malformed(f"a header block of more than {MAX_HEADER_BYTES} bytes")
        return _pairs(raw)


def _stream_id(payload: bytes, name: str, least: int) -> int:
    if len(payload) < least:
        raise Malformed(f"a {name} frame of {len(payload)} bytes")
    stream = int.from_bytes(payload[:4], "big") & 0x7FFF_FFFF
    if stream == 0:
        raise Malformed(f"a {name} frame on stream 0")
    return stream


def _pairs(raw: bytes) -> dict[str, str]:
    """A header block's name/value pairs: a count, then each name and value after its length
    (four bytes each, big-endian)."""

    def field(at: int) -> tuple[str, int]:
        if at + 4 > len(raw):
            raise Malformed("a header block cut short")
        end = at + 4 + int.from_bytes(raw[at : at + 4], "big")
        if end > len(raw):
            raise Malformed("a header block cut short")
        return raw[at + 4 : end].decode("utf-8", "replace"), end

    if len(raw) < 4:
        raise Malformed("a header block without its count")
    count, at = int.from_bytes(raw[:4], "big"), 4
    if count > len(raw) // 8:  # each pair takes at least its two lengths
        raise Malformed(f"a header block claiming {count} pairs in {len(raw)} bytes")
    headers: dict[str, str] = {}
    for _ in range(count):
        name, at = field(at)
        value, at = field(at)
        headers[name.lower()] = value
    if at != len(raw):
        raise Malformed("a header block with bytes after its last pair")
    return headers
