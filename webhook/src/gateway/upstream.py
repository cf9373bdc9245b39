"""The gateway's own calls to the API server, each as the caller (impersonated).

The caller is impersonated whole: user, uid, groups and every user extra its authenticator
added (an OIDC claim, the x509 credential id, ...), so the API server authorizes each call as
the caller (RBAC on pods, pods/exec..., and any authorizer that reads extras) and the webhook
decides it as the caller, seeing the same identity as for a direct call plus the gateway's
marker (`marker`; a `jitgate.dev/session` extra of the caller's own is not passed on). The
gateway's service account may therefore impersonate users, groups, uids and user extras
(charts/jitgate/templates/gateway.yaml); nothing else of its own matters.

A refused upgrade's body (the API server's Status: RBAC, or the webhook's denial with its
`kubectl jit request` hint) is kept by a client middleware, since aiohttp's WebSocket handshake
error carries only the status code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from jitgate.webhook.gateway.channels import status
from jitgate.webhook.gateway.frontproxy import Caller
from jitgate.webhook.gateway.marker import EXTRA_KEY
from jitgate.webhook.gateway.paths import StreamTarget
from jitgate.webhook.gateway.readtoend import ReadToEndConnector
from multidict import CIMultiDict

from jitgate.kube import Credentials

_SYSTEM_AUTHENTICATED = "system:authenticated"  # added back by the API server itself


class UpstreamRefused(Exception):
    """The API server did not open the stream; `body` is its Status (JSON bytes)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__(f"the API server answered {status_code}")
        self.status = status_code
        self.body = body

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body).get("message") or "")
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")[:500]


async def _keep_refusals(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    response = await handler(request)
    if response.status >= 400 and request.headers.get("Upgrade"):
        body = await response.read()
        response.release()
        raise UpstreamRefused(response.status, body)
    return response


# Characters an HTTP header name may hold (RFC 7230 tchar) but '%': Kubernetes percent-encodes
# the rest of an extra's key (client-go's headerKeyEscape), and decodes it back.
_KEY_SAFE = "!#$&'*+-.^_`|~"


def _extra_header(key: str) -> str:
    return "Impersonate-Extra-" + quote(key, safe=_KEY_SAFE)


def impersonation(caller: Caller, marker: str | None = None) -> CIMultiDict[str]:
    """The headers that make a call the caller's: user, uid, groups and extras, and the
    gateway's marker in place of any the caller carried."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Impersonate-User"] = caller.user
    if caller.uid:
        headers["Impersonate-Uid"] = caller.uid
    for group in caller.groups:
        if group != _SYSTEM_AUTHENTICATED:
            headers.add("Impersonate-Group", group)
    for key, values in sorted(caller.extra.items()):
        if key.lower() == EXTRA_KEY:
            continue
        for value in values:
            headers.add(_extra_header(key), value)
    if marker is not None:
        headers[_extra_header(EXTRA_KEY)] = marker
    return headers


@dataclass(frozen=True)
class PodAnswer:
    status: int
    body: bytes
    content_type: str


class Upstream:
    """One connection pool to the API server for every session of the process."""

    def __init__(
        self, credentials: Credentials, *, max_frame_bytes: int, open_timeout: float
    ) -> None:
        self._credentials = credentials
        self._max_frame_bytes = max_frame_bytes
        self._open_timeout = open_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                base_url=self._credentials.server.rstrip("/") + "/",
                connector=ReadToEndConnector(ssl=self._credentials.ssl_context()),
                middlewares=(_keep_refusals,),
                # No overall limit: a session lasts as long as its grant; opening one is
                # bounded in open_stream.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._open_timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, caller: Caller, marker: str | None = None) -> CIMultiDict[str]:
        headers = impersonation(caller, marker)
        authorization = self._credentials.authorization()
        if authorization is not None:
            headers["Authorization"] = authorization
        return headers

    async def read_pod(self, caller: Caller, namespace: str, pod: str) -> PodAnswer:
        """The pod as the caller may read it (kubectl reads it before connecting)."""
        try:
            async with self._client().get(
                f"api/v1/namespaces/{namespace}/pods/{pod}",
                headers=self._headers(caller),
                timeout=aiohttp.ClientTimeout(total=self._open_timeout),
            ) as response:
                return PodAnswer(
                    response.status,
                    await response.read(),
                    response.headers.get("Content-Type", "application/json"),
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            body = status(
                f"the session gateway cannot reach the API server: {error}",
                "ServiceUnavailable",
                503,
            )
            return PodAnswer(503, json.dumps(body).encode(), "application/json")

    async def open_stream(
        self,
        caller: Caller,
        target: StreamTarget,
        query: Sequence[tuple[str, str]],
        protocols: Sequence[str],
        marker: str,
    ) -> aiohttp.ClientWebSocketResponse:
        """The WebSocket to the pod's exec, attach or portforward, opened as the caller with
        the gateway's marker; UpstreamRefused with the API server's answer otherwise."""
        try:
            async with asyncio.timeout(self._open_timeout):
                return await self._client().ws_connect(
                    f"api/v1/namespaces/{target.namespace}/pods/{target.pod}/{target.verb}",
                    params=list(query),
                    headers=self._headers(caller, marker),
                    protocols=tuple(protocols),
                    max_msg_size=self._max_frame_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                )
        except aiohttp.WSServerHandshakeError as error:
            body = status(
                f"the API server refused the stream: {error.message}", "BadRequest", error.status
            )
            raise UpstreamRefused(error.status, json.dumps(body).encode()) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            body = status(
                f"the session gateway cannot reach the API server: {error}",
                "ServiceUnavailable",
                503,
            )
            raise UpstreamRefused(503, json.dumps(body).encode()) from error
