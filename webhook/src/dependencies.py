"""FastAPI dependencies: the service of this app instance."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from jitgate.webhook.service import AdmissionService


async def get_service(request: Request) -> AdmissionService:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which costs
    # more than the decision itself.
    service: AdmissionService = request.app.state.service
    return service


Service = Annotated[AdmissionService, Depends(get_service)]
