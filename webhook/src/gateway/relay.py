"""One live session: the client's WebSocket and the pod's, relayed both ways and recorded.

Every message is passed on unchanged, so exit codes, resizes and the v5 close signal mean what
they mean to kubectl and the API server. For exec and attach each stdin, stdout and stderr
payload is given to the recorder before it is passed on, and each resize is recorded; the
recorder's backpressure (and the client's: a send waits while the client's buffer is full)
slows the pod down rather than buffering without bound. Port-forward is relayed and its
tunnel observed (`portforward`): each message is read for connections before it is passed on,
and a tunnel that cannot be read ends the session.

A session ends by itself (the command exited, either side closed) or is cut (`cut()`: its
grant expired or was revoked, it was idle, the gateway stops, recording failed, it reached the
most one session may record). When cut, the
user's terminal gets a line saying why and the error channel a Status with the same words
(kubectl prints `error: ...` and exits 1), then both sides are closed. An exec or attach whose
pod side ends without the error channel's final Status is cut the same way (STREAM_LOST): its
output may be short, and kubectl would otherwise exit 0 on a normal close.

The pod's side is closed by the API server after the exit status; the gateway then closes the
client's WebSocket at once (kubectl waits for that close, as it does from the API server), and
the close frame follows every byte already sent. The gateway never closes the pod's side first
while a session runs by itself, so nothing the pod still has to send is thrown away. From the
moment the pod's side has ended (or the session is cut) only the client's side is left to
finish, and that is bounded: a client that has not taken the rest within the drain timeout
(`end_if_stalled`, checked by the registry on the gateway's clock) is dropped, its slot freed,
and the session recorded as terminated, "client stopped reading" (unless it was cut already).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from jitgate.webhook.gateway import channels
from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.portforward import PortForwardObserver, TunnelCut

from jitgate.audit.recorder import RecordingFailed, RecordingLimit, SessionRecorder
from jitgate.core.actions import AttemptedAction
from jitgate.core.clock import Clock
from jitgate.core.durations import format_duration
from jitgate.core.sessions import CLIENT_NOT_READING, RECORDING_FAILED, STREAM_LOST, Ending

logger = logging.getLogger(__name__)

# What the user reads when the pod's side ends before the command's exit status.
_STREAM_LOST_WORDS = (
    "the stream from the pod ended before the command's exit status; its output may be incomplete"
)


@dataclass(frozen=True)
class Cut:
    """Why jitgate ends a session: the record's ending and the words the user reads."""

    ending: Ending
    message: str


def _future() -> asyncio.Future[Cut]:
    return asyncio.get_running_loop().create_future()


@dataclass
class LiveSession:
    """What the registry knows of a session while it runs."""

    id: str
    caller: Caller
    attempted: AttemptedAction
    recorder: SessionRecorder
    clock: Clock
    tty: bool = False
    grant: str | None = None  # the grant that let it open (namespace-local name)
    expires_at: dt.datetime | None = None  # that grant's expiresAt
    idle_timeout: dt.timedelta | None = None
    last_input: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # How long the client may take the rest once the pod's side has ended (`end_if_stalled`).
    drain_timeout: dt.timedelta = dt.timedelta(seconds=30)
    draining_since: dt.datetime | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    _cut: asyncio.Future[Cut] = field(default_factory=_future)
    _draining: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped_reading: asyncio.Event = field(default_factory=asyncio.Event)

    def cut(self, cut: Cut) -> None:
        """End the session for `cut`'s reason (once; later reasons are ignored)."""
        if not self._cut.done():
            self._cut.set_result(cut)

    @property
    def is_cut(self) -> bool:
        return self._cut.done()

    def start_draining(self) -> None:
        """Only the client's side is left to finish: the drain timeout runs from now."""
        if self.draining_since is None:
            self.draining_since = self.clock.now()
            self._draining.set()

    async def draining(self) -> None:
        """Wait until only the client's side is left to finish."""
        await self._draining.wait()

    @property
    def stopped_reading(self) -> bool:
        return self._stopped_reading.is_set()

    def end_if_stalled(self, now: dt.datetime) -> bool:
        """Give up on the client once it has had `drain_timeout` since the pod's side ended
        (or the cut) to take the rest: the session is cut for it (when not cut already) and
        its connection dropped. True when that happens now."""
        if (
            self.draining_since is None
            or self.stopped_reading
            or now - self.draining_since < self.drain_timeout
        ):
            return False
        limit = format_duration(self.drain_timeout)
        self.cut(
            Cut(
                Ending.terminated(CLIENT_NOT_READING, f"nothing taken for {limit}"),
                f"the client stopped reading for {limit}",
            )
        )
        self._stopped_reading.set()
        return True

    def idle(self, now: dt.datetime) -> dt.timedelta:
        """Time since the user last typed or resized the terminal."""
        return now - self.last_input


def _farewell(session: LiveSession, message: str) -> list[bytes]:
    line = f"jitgate ended this session: {message}"
    if session.attempted.verb == "portforward":
        return []
    if session.tty:  # one stream to the terminal; raw mode needs the carriage returns
        words = [channels.frame(channels.STDOUT, f"\r\n{line}\r\n".encode())]
    else:
        words = [channels.frame(channels.STDERR, f"{line}\n".encode())]
    return [*words, channels.status_frame(line, "Forbidden")]


class _Inbox:
    """Messages read from the pod's side, waiting to be recorded and sent: at most `limit`
    bytes (then the reader waits), `None` once that side has ended."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._messages: collections.deque[bytes] = collections.deque()
        self._closed = False
        self._changed = asyncio.Event()

    async def put(self, data: bytes) -> None:
        while self._held >= self._limit:
            self._changed.clear()
            await self._changed.wait()
        self._messages.append(data)
        self._held += len(data)
        self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def get(self) -> bytes | None:
        while not self._messages:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        data = self._messages.popleft()
        self._held -= len(data)
        self._changed.set()
        return data


async def relay(
    session: LiveSession,
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    *,
    max_buffered: int,
) -> Ending:
    """Relay until the session ends; returns how it ended (the caller records it)."""
    recording = session.attempted.verb != "portforward"
    tunnel = None if recording else PortForwardObserver(session.recorder)
    exit_code: list[int] = []
    status_seen = False  # the error channel's final Status (an exit code or an error)

    async def from_client() -> Ending:
        async for message in client:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue  # the binary channel protocols carry nothing in text messages
            data: bytes = message.data
            session.bytes_in += len(data)
            if recording and data:
                channel, payload = data[0], data[1:]
                if channel == channels.STDIN:
                    session.last_input = session.clock.now()
                    await session.recorder.write("stdin", payload)
                elif channel == channels.RESIZE:
                    session.last_input = session.clock.now()
                    size = channels.resize_of(payload)
                    if size is not None:
                        await session.recorder.resize(size.width, size.height)
            elif tunnel is not None:  # port-forward: connections counted, bytes not recorded
                session.last_input = session.clock.now()
                await tunnel.from_client(data)
            await upstream.send_bytes(data)
        return Ending.client_closed()

    inbox = _Inbox(max_buffered)

    async def read_pod() -> None:
        """Read the pod's side as it comes, holding up to `max_buffered` bytes while the
        recorder or a slow client catches up (then the reader waits, and so does the pod)."""
        try:
            async for message in upstream:
                if message.type == aiohttp.WSMsgType.BINARY:
                    await inbox.put(message.data)
        finally:
            inbox.close()
            session.start_draining()

    async def from_pod() -> Ending | Cut:
        nonlocal status_seen
        reader = asyncio.ensure_future(read_pod())
        try:
            while (data := await inbox.get()) is not None:
                session.bytes_out += len(data)
                if recording and data:
                    channel, payload = data[0], data[1:]
                    stream = channels.STREAM_NAMES.get(channel)
                    if stream is not None and channel != channels.STDIN:
                        await session.recorder.write(stream, payload)  # type: ignore[arg-type]
                    elif channel == channels.ERROR and payload:
                        status_seen = True
                        code = channels.exit_code_of(payload)
                        if code is not None:
                            exit_code.append(code)
                elif tunnel is not None:
                    await tunnel.from_pod(data)
                await client.send_bytes(data)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if exit_code:
            return Ending.exited(exit_code[0])
        if recording and not status_seen:
            return Cut(Ending.terminated(STREAM_LOST), _STREAM_LOST_WORDS)
        return Ending("stream closed by the API server", cut=False)

    tasks: list[asyncio.Future[Ending | Cut]] = [
        asyncio.ensure_future(from_client()),
        asyncio.ensure_future(from_pod()),
        asyncio.ensure_future(asyncio.shield(session._cut)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = next(iter(done))
        side = ("the client", "the pod's side", "jitgate")[tasks.index(first)]
        logger.info(
            "Session %s of %s: %s ended it, after %d bytes in and %d out",
            session.id, session.caller.user, side, session.bytes_in, session.bytes_out,
        )  # fmt: skip
        outcome: Ending | Cut
        try:
            outcome = first.result()
        except RecordingFailed as error:
            outcome = Cut(Ending.terminated(RECORDING_FAILED), f"it cannot be recorded ({error})")
        except RecordingLimit as error:
            outcome = Cut(error.ending, error.message)
        except TunnelCut as error:
            outcome = Cut(error.ending, str(error))
        except (aiohttp.ClientError, ConnectionError) as error:
            outcome = Ending(f"connection lost: {error}", cut=False)
        if isinstance(outcome, Cut):
            session.cut(outcome)
            with contextlib.suppress(Exception):
                for words in () if session.stopped_reading else _farewell(session, outcome.message):
                    await asyncio.wait_for(client.send_bytes(words), 2.0)
            await _close_connections(tunnel, outcome.ending)
            return outcome.ending
        if first is tasks[1]:
            # The pod's side ended after its exit status: kubectl waits for the close (as the
            # API server closes a direct exec), which follows every byte already sent.
            await _close_client(session, client)
            if session.stopped_reading:
                outcome = session._cut.result().ending
        await _close_connections(tunnel, outcome)
        return outcome
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await _close_client(session, client)


async def _close_client(session: LiveSession, client: web.WebSocketResponse) -> None:
    """Close the client's side after what it was sent; drop the connection instead once the
    client stopped reading (`end_if_stalled`)."""
    session.start_draining()
    closing = asyncio.ensure_future(client.close())
    stalled = asyncio.ensure_future(session._stopped_reading.wait())
    try:
        await asyncio.wait((closing, stalled), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stalled.cancel()
    closing.cancel()  # when not done: aiohttp then closes the transport, which still flushes
    await asyncio.gather(closing, return_exceptions=True)
    request = client._req  # aiohttp keeps the connection only with the request
    if session.stopped_reading and request is not None and request.transport is not None:
        request.transport.abort()  # nothing more is flushed to a client that does not read


async def _close_connections(tunnel: PortForwardObserver | None, ending: Ending) -> None:
    """Record the port-forward connections still open as ended with the session (a failure
    is the recorder's to report: the session's end record says it)."""
    if tunnel is not None:
        with contextlib.suppress(RecordingFailed):
            await tunnel.end(ending)
