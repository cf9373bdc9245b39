"""`POST /validate` and `POST /mutate`: AdmissionReview in, AdmissionReview out."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from jitgate.webhook.controller import AdmissionController
from jitgate.webhook.dependencies import get_controller, read_body
from jitgate.webhook.review import AdmissionRequest, Answer, deny, parse_review, render

logger = logging.getLogger(__name__)

router = APIRouter(tags=["admission"])

_JSON = "application/json"
UNDECIDED = "jitgate could not decide this request because of an internal error"


async def _review(
    controller: AdmissionController,
    body: bytes,
    endpoint: str,
    decide: Callable[[AdmissionRequest], Awaitable[Answer]],
) -> Response:
    started = time.perf_counter()
    # ReviewError propagates to the app's handler, which answers 400.
    request = parse_review(body)
    try:
        answer = await decide(request)
    except Exception:
        # Never a 500 and never an allow: the API server applies its failurePolicy to errors,
        # and a denial states plainly what happened.
        logger.exception("Deciding AdmissionReview %s failed.", request.uid)
        answer = deny(UNDECIDED, "InternalError")
    content = render(request.uid, answer)
    controller.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    return Response(content, media_type=_JSON)


# The two hot endpoints call the dependencies themselves rather than through Depends():
# FastAPI's per-request dependency resolution costs about as much as the decision does.


@router.post("/validate")
async def validate(request: Request) -> Response:
    controller = await get_controller(request)
    body = await read_body(request)
    return await _review(controller, body, "validate", controller.validate)


@router.post("/mutate")
async def mutate(request: Request) -> Response:
    controller = await get_controller(request)
    body = await read_body(request)
    return await _review(controller, body, "mutate", controller.mutate)
