"""The gateway's TLS connections to the API server, decrypted by asyncio's own TLS layer so
that a stream is read to its last byte.

The webhook runs on uvloop, whose TLS layer (0.23) shuts a connection down the moment the TCP
stream ends, dropping whatever it holds still encrypted: while the reader above it is paused,
that is up to its 256 KiB read buffer (the unfixed MagicStack/uvloop#661). The API server ends
an exec with the last output, the exit status and a close frame, then closes the connection
at once; the gateway's reader is paused whenever the pod writes faster than the gateway relays
and records, so the end of a large output (and its exit status) was lost. asyncio's TLS layer
keeps a paused connection open after the TCP stream ends and decrypts the rest when reading
resumes, on any event loop, so the gateway wraps its API server connections with it.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any

import aiohttp
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
