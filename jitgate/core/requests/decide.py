"""`decide()`: the next step of a stored AccessRequest, by its phase."""

from __future__ import annotations

from dataclasses import replace

from jitgate.core.actions import actions_summary
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
            step = admit(request, world)
            if step.status is None:
                return step
            # The first status says what the request is for, for kubectl get's ACTIONS column.
            summary = actions_summary(request.spec.actions)
            return replace(step, status=step.status.model_copy(update={"actions": summary}))
        case "Pending":
            return pending(request, world)
        case "Approved":
            return approved(request, world)
        case _:
            return finished(request, world)
