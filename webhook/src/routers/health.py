"""`GET /healthz` (the process answers), `GET /readyz` (it can decide), `GET /metrics`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from jitgate.webhook.dependencies import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@router.get("/readyz")
async def readyz(service: Service) -> PlainTextResponse:
    readiness = await service.check_readiness()
    if readiness.ready:
        return PlainTextResponse("ok\n")
    return PlainTextResponse(readiness.reason + "\n", status_code=503)


@router.get("/metrics")
async def metrics(service: Service) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
