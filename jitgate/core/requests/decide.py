"""`decide()`: the next step of a stored AccessRequest, by its phase."""

from __future__ import annotations

from jitgate.core.api import AccessRequest
from jitgate.core.requests.approved import approved
from jitgate.core.requests.finished import finished
from jitgate.core.requests.new import admit
from jitgate.core.requests.pending import pending
from jitgate.core.requests.step import Step, World


def decide(request: AccessRequest, world: World) -> Step:
    if request.metadata.deletion_timestamp is not None:
        return Step()  # the deletion handler revokes; nothing else may start now
    match request.status.phase:
        case None:
            return admit(request, world)
        case "Pending":
            return pending(request, world)
        case "Approved":
            return approved(request, world)
        case _:
            return finished(request, world)
