"""FastAPI dependencies: the service of this app instance and the raw review body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from jitgate.webhook.review import MAX_BODY_BYTES, ReviewError
from jitgate.webhook.service import AdmissionService


async def get_service(request: Request) -> AdmissionService:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which costs
    # more than the decision itself.
    service: AdmissionService = request.app.state.service
    return service


async def read_body(request: Request) -> bytes:
    """The body, refused as soon as it exceeds the limit (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ReviewError(f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ReviewError(f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.")
        chunks.append(chunk)
    return b"".join(chunks)


Service = Annotated[AdmissionService, Depends(get_service)]
