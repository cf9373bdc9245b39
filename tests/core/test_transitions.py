"""The transition table the package documents is the one `decide` and `end_grant` follow."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support import objects
from support.clocks import NOW

from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessPolicy, AccessRequest, RequestPhase
from jitgate.core.grants import end_grant
from jitgate.core.policy import Namespace
from jitgate.core.requests.approved import issued
from jitgate.core.requests.decide import decide
from jitgate.core.requests.new import deny_invalid
from jitgate.core.requests.step import Step, World, to_phase
from jitgate.core.requests.stored import read_request
from jitgate.core.requests.transitions import (
    TRANSITIONS,
    InvalidTransition,
    can_transition,
    is_terminal,
    transition,
)
from jitgate.core.wire import Unreadable

Edge = tuple[RequestPhase | None, RequestPhase]
POLICIES = [
    AccessPolicy.model_validate(objects.policy()),
    AccessPolicy.model_validate(
        objects.policy(
            "emergency",
            namespaces={"names": ["ops"]},
            breakGlass={"groups": ["developers"], "maxDuration": "30m"},
        )
    ),
]


def world(namespace: str = "prod", now: dt.datetime = NOW) -> World:
    return World(
        now=now, policies=POLICIES, namespace=Namespace(namespace, {}), retention=dt.timedelta(7)
    )


class Story:
    """One request, its steps applied to the stored object as the operator applies them."""

    def __init__(self, namespace: str = "prod", **spec: Any) -> None:
        self.raw = objects.access_request(
            namespace=namespace,
            metadata={"uid": objects.REQUEST_UID},
            requester=objects.requester(),
            **spec,
        )
        self.namespace = namespace
        self.edges: list[Edge] = []

    @property
    def request(self) -> AccessRequest:
        parsed = read_request(self.raw)
        assert isinstance(parsed, AccessRequest)
        return parsed

    def step(self, now: dt.datetime = NOW) -> Step:
        request = self.request
        step = decide(request, world(self.namespace, now))
        status = step.status
        if step.grant is not None:
            status = issued(request, step, step.grant, now).status
            self.grant = step.grant
        if status is not None:
            self.write(status.to_patch())
        return step

    def write(self, patch: dict[str, Any]) -> None:
        before = (self.raw.get("status") or {}).get("phase")
        self.raw["status"] = {**(self.raw.get("status") or {}), **patch}
        after = self.raw["status"].get("phase")
        if after != before:
            self.edges.append((before, after))

    def approve(self, user: str, decision: str = "Approve") -> None:
        entry = objects.approval(user, decision, digest=spec_digest(self.request.spec))
        self.raw["status"]["approvals"].append(entry)

    def end(self, kind: Any) -> None:
        ending = end_grant(self.grant, self.request, now=NOW, kind=kind, actor=None, reason="x")
        assert ending.request_status is not None
        self.write(ending.request_status.to_patch())


def test_every_edge_of_the_table_is_taken_and_no_other() -> None:
    taken: set[Edge] = set()
    for ending in ("Expired", "Revoked"):  # new → Pending → Approved → Expired | Revoked
        story = Story()
        story.step()
        story.approve("bob")
        story.step()
        story.end(ending)
        taken.update(story.edges)
    emergency = Story("ops", breakGlass=True)  # new → Approved
    emergency.step()
    refused = Story("dev")  # new → Denied: no policy protects dev
    refused.step()
    denied = Story()  # Pending → Denied
    denied.step()
    denied.approve("bob", "Deny")
    denied.step()
    late = Story()  # Pending → Expired
    late.step()
    late.step(NOW + dt.timedelta(hours=2))
    cancelled = Story()  # Pending → Cancelled
    cancelled.step()
    cancelled.raw["metadata"]["annotations"] = {
        "jitgate.dev/cancel": "true",
        "jitgate.dev/cancelled-by": "alice",
    }
    cancelled.step()
    for story in (emergency, refused, denied, late, cancelled):
        taken.update(story.edges)
    table = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert taken == table


def test_an_invalid_request_is_denied_through_the_table() -> None:
    raw = objects.access_request(metadata={"uid": "u-1"}, actions=[])
    unreadable = read_request(raw)
    assert isinstance(unreadable, Unreadable)
    step = deny_invalid(unreadable, raw, world())
    assert step.status is not None and step.status.phase == "Denied"
    assert can_transition(None, "Denied")


def test_a_step_along_an_edge_not_in_the_table_raises() -> None:
    with pytest.raises(InvalidTransition, match="from Denied to Approved"):
        to_phase("Denied", "Approved", message="approved after all")


def test_transitions() -> None:
    assert transition(None, "Pending") == "Pending"
    assert transition("Pending", "Approved") == "Approved"
    assert transition("Approved", "Expired") == "Expired"
    assert transition("Approved", "Revoked") == "Revoked"
    assert can_transition("Pending", "Cancelled")
    with pytest.raises(InvalidTransition, match="from Denied to Approved"):
        transition("Denied", "Approved")
    with pytest.raises(InvalidTransition):
        transition("Pending", "Revoked")


@pytest.mark.parametrize("phase", ["Denied", "Expired", "Revoked", "Cancelled"])
def test_terminal_phases_are_final(phase: RequestPhase) -> None:
    assert is_terminal(phase)
    for target in ("Pending", "Approved", "Denied", "Expired", "Revoked", "Cancelled"):
        assert not can_transition(phase, target)  # type: ignore[arg-type]
