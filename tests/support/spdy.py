"""SPDY/3.1 frames as spdystream writes them (one header compression context per direction),
and the frames kubectl port-forward sends for one local connection."""

from __future__ import annotations

import zlib

from jitgate.webhook.gateway.spdy import DICTIONARY, FLAG_FIN


class Writer:
    """One direction of a SPDY connection."""

    def __init__(self) -> None:
        self._deflater = zlib.compressobj(9, zdict=DICTIONARY)

    def block(self, headers: dict[str, str]) -> bytes:
        raw = len(headers).to_bytes(4, "big")
        for name, value in headers.items():
            for text in (name, value):
                raw += len(text.encode()).to_bytes(4, "big") + text.encode()
        return self._deflater.compress(raw) + self._deflater.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        payload = stream.to_bytes(4, "big") + bytes(4) + b"\x00\x00" + self.block(headers)
        return control(1, payload, FLAG_FIN if fin else 0)

    def syn_reply(self, stream: int, *, fin: bool = False) -> bytes:
        return control(2, stream.to_bytes(4, "big") + self.block({}), FLAG_FIN if fin else 0)


def control(kind: int, payload: bytes, flags: int = 0, version: int = 3) -> bytes:
    first = 0x8000_0000 | version << 16 | kind
    return first.to_bytes(4, "big") + bytes([flags]) + len(payload).to_bytes(3, "big") + payload


def data(stream: int, payload: bytes = b"", *, fin: bool = False) -> bytes:
    flags = bytes([FLAG_FIN if fin else 0])
    return stream.to_bytes(4, "big") + flags + len(payload).to_bytes(3, "big") + payload


def rst_stream(stream: int, status: int = 5) -> bytes:  # 5: CANCEL
    return control(3, stream.to_bytes(4, "big") + status.to_bytes(4, "big"))


def ping(ident: int = 1) -> bytes:
    return control(6, ident.to_bytes(4, "big"))


def forward_headers(kind: str, request_id: int, port: int = 8080) -> dict[str, str]:
    """What kubectl's port-forwarder names a stream with (spdystream lower-cases names)."""
    return {"streamtype": kind, "port": str(port), "requestid": str(request_id)}
