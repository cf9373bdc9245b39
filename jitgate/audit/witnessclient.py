"""A writer's side of c2sp.org/tlog-witness: submit a checkpoint, get cosignatures back.

The checkpointer calls `WitnessClient.submit` for each checkpoint it signs, with a
consistency proof from the size the witness last cosigned. It remembers that size; a
first request (or one after the witness moved on without it) learns it from the 409.
A witness that does not answer within `timeout` costs one log line, never a record:
the checkpoint is stored either way and goes to the witness with the next one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from jitgate.audit.witness import SIZE_CONTENT_TYPE, Submission

logger = logging.getLogger("jitgate.audit")

DEFAULT_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str

    @property
    def latest_size(self) -> int | None:
        """The witness's latest size, from a 409 that says it."""
        if self.status != 409 or not self.content_type.startswith(SIZE_CONTENT_TYPE):
            return None
        text = self.body.decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() else None


@dataclass
class WitnessClient:
    """One witness, by its submission prefix (`http://host:port` or with a path)."""

    url: str
    timeout: float = DEFAULT_TIMEOUT
    known_size: int = field(default=0)  # what it last said it cosigned for this writer
    tls: ssl.SSLContext | None = None  # for https:// witnesses; None: the system's CAs

    async def submit(self, submission: Submission) -> Reply:
        return await asyncio.to_thread(self._post, submission.render())

    def _post(self, body: bytes) -> Reply:
        request = urllib.request.Request(
            self.url.rstrip("/") + "/add-checkpoint", data=body, method="POST"
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.tls
            ) as response:
                return Reply(response.status, response.read(), response.headers["Content-Type"])
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), error.headers.get("Content-Type", ""))


def peer_tls(ca_file: Path) -> ssl.SSLContext:
    """TLS to witnesses whose certificates `ca_file` signed: webhook replicas witnessing one
    another, each addressed by its own Service, which the shared serving certificate does
    not name. So the CA is checked, not the name; what a witness says is signed anyway."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    return context


def other_witnesses(urls: Sequence[str], writer_id: str) -> list[str]:
    """`urls` without the one naming this writer (its host's first label is the writer id):
    every replica is given the same list of peers, and none is its own witness."""
    return [
        url
        for url in urls
        if (urllib.parse.urlsplit(url).hostname or "").split(".", 1)[0] != writer_id.lower()
    ]
