"""Reading SPDY/3.1 as kubectl port-forward tunnels it: frames cut anywhere by the WebSocket,
header blocks inflated in one context per direction, data counted per stream, and bytes that
are not SPDY/3.1 named rather than passed over."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from jitgate.webhook.gateway import spdy
from support.spdy import Writer, control, data, forward_headers, ping, rst_stream


def kubectl_connection(writer: Writer, request_id: int, first_stream: int) -> bytes:
    """What kubectl sends for one local connection that writes 'hello' and closes."""
    error, payload = first_stream, first_stream + 2
    return b"".join(
        (
            writer.syn_stream(error, forward_headers("error", request_id), fin=True),
            writer.syn_stream(payload, forward_headers("data", request_id)),
            data(payload, b"hel"),
            data(payload, b"lo"),
            data(payload, fin=True),
        )
    )


def merged(events: list[spdy.Event]) -> list[spdy.Event]:
    """Events with consecutive data of one stream added up (how a frame's payload is cut
    into pieces depends on the feed)."""
    out: list[spdy.Event] = []
    for event in events:
        if not isinstance(event, spdy.Data):
            out.append(event)
            continue
        last = out[-1] if out else None
        if isinstance(last, spdy.Data) and last.stream == event.stream:
            out[-1] = spdy.Data(event.stream, last.size + event.size, event.fin)
        else:
            out.append(spdy.Data(event.stream, event.size, event.fin))
    return out


EXPECTED = [
    spdy.Opened(1, forward_headers("error", 0), fin=True),
    spdy.Opened(3, forward_headers("data", 0), fin=False),
    spdy.Data(3, 5, fin=True),
    spdy.Opened(5, forward_headers("error", 1), fin=True),
    spdy.Opened(7, forward_headers("data", 1), fin=False),
    spdy.Data(7, 5, fin=True),
    spdy.Reset(3, 5),
]


def two_connections() -> bytes:
    writer = Writer()
    return (
        kubectl_connection(writer, 0, 1) + ping() + kubectl_connection(writer, 1, 5)
        + rst_stream(3)
    )  # fmt: skip


def test_the_dictionary_is_spdy3s() -> None:
    # The digest of the dictionary in the SPDY/3 draft and in spdystream (Go).
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    )


def test_streams_data_and_ends_are_read_in_order() -> None:
    reader = spdy.FrameReader()
    assert merged(reader.feed(two_connections())) == EXPECTED
    assert reader.between_frames


def test_frames_split_at_every_byte_read_the_same() -> None:
    stream = two_connections()
    for cut in range(1, len(stream)):
        reader = spdy.FrameReader()
        events = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert merged(events) == EXPECTED, f"cut at byte {cut}"
    reader = spdy.FrameReader()
    one_by_one = [event for i in range(len(stream)) for event in reader.feed(stream[i : i + 1])]
    assert merged(one_by_one) == EXPECTED


def test_a_data_frames_payload_is_counted_as_it_passes_with_its_head() -> None:
    reader = spdy.FrameReader(keep=4)
    frame = data(9, b"no such port", fin=True)
    assert reader.feed(frame[:10]) == [spdy.Data(9, 2, False, b"no")]
    assert not reader.between_frames
    assert reader.feed(frame[10:]) == [spdy.Data(9, 10, True, b" suc")]
    assert reader.between_frames


def test_a_header_block_split_across_messages_opens_its_stream_when_whole() -> None:
    writer = Writer()
    frame = writer.syn_stream(1, forward_headers("data", 0, port=5432))
    reader = spdy.FrameReader()
    thirds = len(frame) // 3
    assert reader.feed(frame[:thirds]) == []
    assert reader.feed(frame[thirds : 2 * thirds]) == []
    assert reader.feed(frame[2 * thirds :]) == [
        spdy.Opened(1, forward_headers("data", 0, port=5432), fin=False)
    ]


def test_header_blocks_share_one_compression_context_per_direction() -> None:
    writer = Writer()
    first = writer.syn_stream(1, forward_headers("error", 0))
    second = writer.syn_stream(3, forward_headers("data", 0))
    reader = spdy.FrameReader()
    assert [type(e) for e in reader.feed(first + second)] == [spdy.Opened, spdy.Opened]
    with pytest.raises(spdy.Malformed, match="does not inflate"):
        spdy.FrameReader().feed(second)  # its block refers back to the first's


def test_replies_keep_the_context_and_a_reply_with_fin_ends_a_half() -> None:
    pod = Writer()
    reader = spdy.FrameReader()
    events = reader.feed(pod.syn_reply(1) + pod.syn_reply(3, fin=True) + pod.syn_reply(5))
    assert events == [spdy.Finished(3)]


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (control(1, bytes(10), version=2), "SPDY version 2, not 3"),
        (control(4, bytes(spdy.MAX_CONTROL_BYTES + 1)), "a control frame of 65537 bytes"),
        (control(1, (1).to_bytes(4, "big") + bytes(6) + b"not zlib"), "does not inflate"),
        (control(1, b"\x00\x00\x00"), "a SYN_STREAM frame of 3 bytes"),
        (control(3, bytes(8)), "a RST_STREAM frame on stream 0"),
        (data(0, b"x"), "a data frame on stream 0"),
    ],
)
def test_what_is_not_spdy31_is_named_and_the_reader_stays_spent(sent: bytes, said: str) -> None:
    reader = spdy.FrameReader()
    with pytest.raises(spdy.Malformed, match=said):
        reader.feed(sent)
    with pytest.raises(spdy.Malformed, match=said):
        reader.feed(data(1, b"more"))


def test_a_header_block_that_does_not_add_up_is_malformed() -> None:
    for raw, said in (
        ((1).to_bytes(4, "big") + (9).to_bytes(4, "big") + b"port", "cut short"),
        ((500).to_bytes(4, "big") + bytes(8), "claiming 500 pairs"),
        ((0).to_bytes(4, "big") + b"extra", "bytes after its last pair"),
    ):
        deflater = zlib.compressobj(zdict=spdy.DICTIONARY)
        block = deflater.compress(raw) + deflater.flush(zlib.Z_SYNC_FLUSH)
        frame = control(1, (1).to_bytes(4, "big") + bytes(6) + block)
        with pytest.raises(spdy.Malformed, match=said):
            spdy.FrameReader().feed(frame)


def test_a_truncated_frame_is_seen_as_half_read() -> None:
    writer = Writer()
    frame = writer.syn_stream(1, forward_headers("data", 0))
    reader = spdy.FrameReader()
    assert reader.feed(frame[:-1]) == []
    assert not reader.between_frames
