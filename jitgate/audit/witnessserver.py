"""`jitgate audit witness`: the witness's storage and its HTTP endpoint.

    POST <prefix>/add-checkpoint        c2sp.org/tlog-witness, decided by `witness.Witness`

The state directory holds one file per log, named by its origin (percent-encoded), with
the latest checkpoint the witness cosigned; it is replaced whole (written aside, fsync'd,
renamed) before the cosignature is sent, and the check and the replacement happen under
one lock, so two racing requests can never roll a log back (the spec's warning).

Plain HTTP is enough for integrity (every statement is signed); put it behind TLS or a
bastion to keep it private. Bodies over `MAX_BODY` bytes are refused (413).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

from jitgate.audit.witness import Accepted, Answer, Witness, parse_submission

logger = logging.getLogger("jitgate.audit.witness")

MAX_BODY: Final = 64 * 1024
_SUFFIX: Final = ".checkpoint"


class WitnessStore:
    """The latest cosigned checkpoint of each log, in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dir = directory
        self.lock = threading.Lock()

    def _path(self, origin: str) -> Path:
        return self._dir / (urllib.parse.quote(origin, safe="") + _SUFFIX)

    def latest(self, origin: str) -> bytes | None:
        try:
            return self._path(origin).read_bytes()
        except FileNotFoundError:
            return None

    def save(self, origin: str, checkpoint: bytes) -> None:
        path = self._path(origin)
        aside = path.with_name(path.name + ".tmp")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(checkpoint)
            file.flush()
            os.fsync(fd)
        os.replace(aside, path)
        dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def add_checkpoint(
    witness: Witness, store: WitnessStore, body: bytes, now: Callable[[], float] = time.time
) -> Answer:
    """Decide one request; an accepted checkpoint is persisted before the answer."""
    submission = parse_submission(body)
    if isinstance(submission, Answer):
        return submission
    with store.lock:  # from reading the latest to persisting the next: one at a time
        try:
            origin = submission.checkpoint.split(b"\n", 1)[0].decode()
        except UnicodeDecodeError:
            origin = ""
        latest = store.latest(origin) if origin else None
        decision = witness.add_checkpoint(submission, latest, int(now()))
        if isinstance(decision, Accepted):
            store.save(decision.origin, decision.latest)
            return decision.answer
    if decision.status in (409, 422):
        # A 409 is also how a writer learns the size to prove from; a 422 is evidence.
        logger.log(
            logging.WARNING if decision.status == 422 else logging.INFO,
            "Refused a checkpoint of %s (%d): %s",
            origin,
            decision.status,
            decision.body.decode(errors="replace").strip(),
        )
    return decision


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        store: WitnessStore,
        prefix: str = "",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.witness = witness
        self.store = store
        self.now = now  # the time cosignatures state
        self.path_add = prefix.rstrip("/") + "/add-checkpoint"
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.path_add.removesuffix('/add-checkpoint')}"


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec asks

    def do_POST(self) -> None:
        if self.path != self.server.path_add:
            self._answer(Answer(404, b"not found\n"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(Answer(411, b"a Content-Length is required\n"), close=True)
            return
        if not 0 <= length <= MAX_BODY:
            self._answer(Answer(413, b"the request is too large\n"), close=True)
            return
        body = self.rfile.read(length)
        self._answer(add_checkpoint(self.server.witness, self.server.store, body, self.server.now))

    def _answer(self, answer: Answer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        logger.info("%s %s", self.address_string(), format % args)
