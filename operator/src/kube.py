"""The few Kubernetes API calls the operator makes itself, over one async HTTP session.

kopf watches and patches through its own client; creating and deleting Grants, patching
AccessRequest status from daemons, deleting expired requests and writing AccessPolicies'
`Enforced` condition go through `KubeApi`.
Credentials come from `jitgate.kube.load_credentials` (its one precedence rule) and are
shared with kopf's login, so both clients talk to the same server as the same identity.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import kopf
from multidict import CIMultiDict

from jitgate.core.api import GROUP, VERSION
from jitgate.kube import Credentials

Obj = dict[str, Any]

_API: Final = f"/apis/{GROUP}/{VERSION}"


class ApiError(Exception):
    """An API call the server refused; `status` is the HTTP code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def connection_info(credentials: Credentials) -> kopf.ConnectionInfo:
    """The same credentials, as kopf's login handler returns them (kopf logs in again once
    the token expires, and gets the renewed one)."""
    token = credentials.token()
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=credentials.ca_path,
        insecure=credentials.insecure,
        scheme="Bearer" if token is not None else None,
        token=token.value if token is not None else None,
        expiration=token.expires if token is not None else None,
        username=credentials.username,
        password=credentials.password,
        certificate_path=credentials.certificate_path,
        private_key_path=credentials.private_key_path,
        # kopf is told the namespaces to serve; it needs no default.
        default_namespace=None,
    )


def object_path(plural: str, namespace: str, name: str = "", subresource: str = "") -> str:
    """The path of a jitgate object; an empty namespace names a cluster-scoped one."""
    path = f"{_API}/namespaces/{namespace}/{plural}" if namespace else f"{_API}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


@dataclass(frozen=True)
class Impersonation:
    """Act as someone else (the API server checks RBAC `impersonate` for each header): a
    decision made elsewhere is then written, and stamped by the webhook, as its author's."""

    user: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, str], ...] = ()  # (key, value): userInfo extra, e.g. jitgate.dev/via

    def headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict({"Impersonate-User": self.user})
        for group in self.groups:
            headers.add("Impersonate-Group", group)
        for key, value in self.extra:
            # Header names cannot hold "/": the API server percent-decodes extra keys.
            headers.add(f"Impersonate-Extra-{quote(key, safe='')}", value)
        return headers


class KubeApi:
    """A minimal JSON client; every call raises `ApiError` on a non-2xx answer."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self._credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            credentials = self._credentials
            self._session = aiohttp.ClientSession(
                base_url=credentials.server.rstrip("/") + "/",
                connector=aiohttp.TCPConnector(ssl=credentials.ssl_context()),
                headers={"Accept": "application/json", "User-Agent": "jitgate-operator"},
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        impersonate: Impersonation | None = None,
    ) -> Obj:
        session = self._open()
        data = None if body is None else json.dumps(body)
        headers: CIMultiDict[str] = CIMultiDict()
        if data is not None:
            headers["Content-Type"] = content_type
        if impersonate is not None:
            headers.extend(impersonate.headers())
        # Per call, not per session: a token from a file or an exec plugin is renewed (in a
        # thread, as renewing may run the plugin).
        authorization = await asyncio.to_thread(self._credentials.authorization)
        if authorization is not None:
            headers["Authorization"] = authorization
        async with session.request(method, path.lstrip("/"), data=data, headers=headers) as reply:
            text = await reply.text()
            answer: Any = json.loads(text) if text else {}
            if reply.status >= 400:
                answer = answer if isinstance(answer, dict) else {}
                raise ApiError(
                    reply.status,
                    str(answer.get("reason") or reply.reason or ""),
                    str(answer.get("message") or f"{method} {path} answered {reply.status}"),
                )
            return answer if isinstance(answer, dict) else {}

    # The calls the operator needs, named after what they do.
    async def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.call("GET", object_path(plural, namespace, name))
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def create(self, plural: str, namespace: str, body: Obj) -> Obj:
        return await self.call("POST", object_path(plural, namespace), body)

    async def patch_status(self, plural: str, namespace: str, name: str, status: Obj) -> Obj:
        """Merge `status` into the object's status (a JSON merge patch of the subresource)."""
        path = object_path(plural, namespace, name, "status")
        body = {"status": status}
        return await self.call("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, plural: str, namespace: str, name: str, *, uid: str = "") -> bool:
        """Delete if it exists (and still has this uid); False when it was already gone."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.call("DELETE", object_path(plural, namespace, name), body)
        except ApiError as error:
            if error.not_found or (uid and error.conflict):
                return False
            raise
        return True
