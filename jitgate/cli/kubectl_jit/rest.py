"""A small typed client for the Kubernetes REST API: the calls `kubectl jit` makes, and no more.

JSON in and out over urllib3, for requests (`call`) and watch streams (`watch`). urllib3 alone,
because it is the smallest maintained stack that does what a CLI needs: one pure-Python
distribution with no dependencies, connection reuse, connect and read timeouts, streamed
reads, TLS from an `ssl.SSLContext` (what `Credentials.ssl_context()` builds). httpx would
bring httpcore, h11, anyio and more for an async side `kubectl jit` does not use; the
standard library's http.client has no pool and no separate connect timeout. Trust is the
kubeconfig's CA or, without one, the system's roots, as kubectl does, so no certifi.

Warnings the API server sends (an admission webhook's advice) are printed to stderr as
`Warning: …`, as kubectl prints them. A non-2xx answer raises `ApiStatus` with the API
server's own message; a server that cannot be reached raises urllib3's or the OS's exception,
which the caller turns into its sentence.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Generator, Mapping
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from jitgate.kube import Credentials

Json = dict[str, Any]

JSON: Final = "application/json"
JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
_USER_AGENT: Final = "kubectl-jit"
# RFC 7234 warn-value as the API server writes it: `299 - "text"` (quotes escaped).
_WARNING = re.compile(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"')


class ApiStatus(Exception):
    """The API server refused a call: its HTTP status, reason and (Status) message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class RestClient:
    """Calls to one API server as one identity (see `jitgate.kube.Credentials`)."""

    def __init__(self, credentials: Credentials, *, timeout: urllib3.Timeout) -> None:
        self.credentials = credentials
        self._base = credentials.server.rstrip("/")
        self._timeout = timeout
        if credentials.insecure:
            # The user chose insecure-skip-tls-verify; kubectl does not warn on every call either.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        https = self._base.startswith("https:")
        # No retries: kubectl fails at once on an unreachable server, so does `kubectl jit`.
        self._pool = urllib3.PoolManager(
            retries=False, ssl_context=credentials.ssl_context() if https else None
        )

    def call(
        self, method: str, path: str, body: object = None, *, content_type: str = JSON
    ) -> object:
        """The decoded JSON answer (None for an empty or non-JSON one); ApiStatus if refused."""
        response = self._pool.request(
            method,
            self._base + path,
            body=None if body is None else json.dumps(body).encode(),
            headers=self._headers(content_type if body is not None else None),
            timeout=self._timeout,
        )
        for header in response.headers.getlist("Warning"):
            warned = _WARNING.match(header)
            if warned:
                text = re.sub(r"\\(.)", r"\1", warned.group(1))
                sys.stderr.write(f"Warning: {text}\n")
        if response.status >= 400:
            raise _refusal(response)
        return _decoded(response.data)

    def watch(
        self, path: str, query: Mapping[str, str], *, read_timeout: float
    ) -> Generator[Json, None, None]:
        """Open a watch (`?watch=true` is added); its events, until the stream ends.

        Opening fails as `call` does when the server cannot be reached. A watch the server
        refuses has no event, as a stream that ends at once: the caller reads the object
        again, so a user who may get but not watch still sees it change."""
        response = self._pool.request(
            "GET",
            f"{self._base}{path}?{urlencode({**query, 'watch': 'true'})}",
            headers=self._headers(None),
            timeout=urllib3.Timeout(connect=self._timeout.connect_timeout, read=read_timeout),
            preload_content=False,
        )
        return _events(response)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": _USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        authorization = self.credentials.authorization()
        if authorization is not None:
            headers["Authorization"] = authorization
        return headers


def _events(response: urllib3.BaseHTTPResponse) -> Generator[Json, None, None]:
    """The JSON lines of a watch stream; reading errors are urllib3's or the OS's."""
    try:
        if response.status >= 400:
            return
        buffer = b""
        while chunk := response.read1(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
    finally:
        response.release_conn()


def _decoded(data: bytes) -> object:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _refusal(response: urllib3.BaseHTTPResponse) -> ApiStatus:
    answer = _decoded(response.data)
    status: Json = answer if isinstance(answer, dict) else {}
    reason = str(status.get("reason") or response.reason or "")
    message = status.get("message")
    if not message:
        message = f"the API server answered {response.status}" + (
            f" {response.reason}" if response.reason else ""
        )
    return ApiStatus(response.status, reason, str(message))
