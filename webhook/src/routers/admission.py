"""`POST /validate` and `POST /mutate`: AdmissionReview in, AdmissionReview out.

Both are plain routes on the router, not FastAPI path operations: the API server waits for
every answer, and FastAPI's per-request parameter and dependency machinery would cost more
than the decision itself. They call the dependencies directly instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from jitgate.webhook.dependencies import get_service, read_body
from jitgate.webhook.review import AdmissionRequest, Answer, deny, parse_review, render
from jitgate.webhook.service import AdmissionService

logger = logging.getLogger(__name__)

router = APIRouter(tags=["admission"])

_JSON = "application/json"
UNDECIDED = "jitgate could not decide this request because of an internal error"


async def _review(
    request: Request,
    endpoint: str,
    decide: Callable[[AdmissionService], Callable[[AdmissionRequest], Awaitable[Answer]]],
) -> Response:
    started = time.perf_counter()
    service = await get_service(request)
    # ReviewError propagates to the app's handler, which answers 400.
    review = parse_review(await read_body(request))
    try:
        answer = await decide(service)(review)
    except Exception:
        # Never a 500 and never an allow: the API server applies its failurePolicy to errors,
        # and a denial states plainly what happened.
        logger.exception("Deciding AdmissionReview %s failed.", review.uid)
        answer = deny(UNDECIDED, "InternalError")
    content = render(review.uid, answer)
    service.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    return Response(content, media_type=_JSON)


async def validate(request: Request) -> Response:
    return await _review(request, "validate", lambda service: service.validate)


async def mutate(request: Request) -> Response:
    return await _review(request, "mutate", lambda service: service.mutate)


router.add_route("/validate", validate, methods=["POST"])
router.add_route("/mutate", mutate, methods=["POST"])
