"""The application factory: the admission front (`routers.admission`, plain ASGI) before a
FastAPI app for health, metrics and error handling, sharing one service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from jitgate.webhook.review import ReviewError
from jitgate.webhook.routers import admission, health, witness
from jitgate.webhook.service import AdmissionService
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _bad_review(_: Request, error: Exception) -> JSONResponse:
    return _error(400, str(error))


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return _error(error.status_code, f"{error.detail}.")


async def _internal_error(_: Request, error: Exception) -> JSONResponse:
    # Logged by uvicorn; the caller gets one sentence, never a traceback.
    return _error(500, "The webhook failed to handle this request.")


def create_app(
    service: AdmissionService,
    *,
    lifespan: Lifespan | None = None,
    max_in_flight: int = admission.DEFAULT_MAX_IN_FLIGHT,
    queue_wait: float = admission.DEFAULT_QUEUE_WAIT,
    trust_traces: bool = False,
    peer_witness: witness.PeerWitness | None = None,
) -> ASGIApp:
    """An app deciding with `service`, at most `max_in_flight` reviews at once; `lifespan`
    starts and stops what feeds it; with `trust_traces` the API server's trace ids name each
    review's user request; with `peer_witness` it also witnesses its peers' logs."""

    @asynccontextmanager
    async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="jitgate admission webhook",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan or no_lifespan,
    )
    app.state.service = service
    app.include_router(health.router)
    if peer_witness is not None:
        app.state.peer_witness = peer_witness
        app.include_router(witness.router)
    app.add_exception_handler(ReviewError, _bad_review)
    app.add_exception_handler(RequestValidationError, _bad_review)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return admission.admission_front(
        service, app, max_in_flight=max_in_flight, queue_wait=queue_wait, trust_traces=trust_traces
    )
