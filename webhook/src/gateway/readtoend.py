"""The gateway's TLS, both ways, by asyncio's own TLS layer so that a stream is read to its
last byte: its connections to the API server (`ReadToEndConnector`) and the port the API
server's front proxy calls (`ReadToEndSite`).

The webhook runs on uvloop, whose TLS layer (0.23) shuts a connection down the moment the TCP
stream ends, dropping whatever it holds still encrypted: while the reader above it is paused,
that is up to its 256 KiB read buffer (the unfixed MagicStack/uvloop#661). The API server ends
an exec with the last output, the exit status and a close frame, then closes the connection
at once; the gateway's reader is paused whenever the pod writes faster than the gateway relays
and records, so the end of a large output (and its exit status) was lost. asyncio's TLS layer
keeps a paused connection open after the TCP stream ends and decrypts the rest when reading
resumes, on any event loop, so the gateway wraps its API server connections with it.
The same holds the other way: the API server proxies kubectl's stdin and port-forward data to
the gateway and closes as soon as kubectl does, while the gateway's reader may be paused
(sending to the pod waits), so the gateway's own port is served by asyncio's layer too.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.client_proto import ResponseHandler


class ReadToEndConnector(aiohttp.TCPConnector):
    """aiohttp's connector with TLS by asyncio's `SSLProtocol` over a plain TCP connection
    (opened by aiohttp as usual: addresses, timeouts, errors)."""

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        context = kwargs.get("ssl")
        if not isinstance(context, ssl.SSLContext):
            return await super()._wrap_create_connection(*args, **kwargs)
        factory, *rest = args
        loop = asyncio.get_running_loop()
        handshake: asyncio.Future[None] = loop.create_future()
        app: ResponseHandler = factory()
        tls = sslproto.SSLProtocol(
            loop, app, context, handshake, server_hostname=kwargs.pop("server_hostname", None)
        )
        kwargs["ssl"] = None  # aiohttp opens TCP; `tls` speaks TLS over it
        transport, _ = await super()._wrap_create_connection(lambda: tls, *rest, **kwargs)
        try:
            await handshake
        except BaseException as error:
            transport.close()
            if isinstance(error, ssl.SSLCertVerificationError):
                raise aiohttp.ClientConnectorCertificateError(
                    kwargs["req"].connection_key, error
                ) from error
            if isinstance(error, OSError):
                raise aiohttp.ClientConnectorSSLError(
                    kwargs["req"].connection_key, error
                ) from error
            raise
        return tls._app_transport, app  # made by the handshake


class ReadToEndSite(web.BaseSite):
    """aiohttp's TCP site with TLS by asyncio's `SSLProtocol` over plain TCP connections:
    the handshake (and `peercert`, which the front-proxy check reads) as with `ssl=`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, context: ssl.SSLContext
    ) -> None:
        super().__init__(runner, ssl_context=context)
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        handler = self._runner.server
        context = self._ssl_context
        assert handler is not None and context is not None  # set up before a site is made

        def tls() -> sslproto.SSLProtocol:
            # No waiter (typeshed wants one; asyncio checks for None): nobody awaits a server
            # side's handshake, aiohttp's handler is made connected once it is done.
            waiter: Any = None
            return sslproto.SSLProtocol(loop, handler(), context, waiter, server_side=True)

        self._server = await loop.create_server(
            tls, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
