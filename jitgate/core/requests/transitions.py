"""The AccessRequest transition table, and `transition()`, which every phase change calls.

`TRANSITIONS` is the diagram in the package docstring as data: `None` is a new request (no
phase yet). A step that would move a request along an edge not in the table raises
`InvalidTransition` instead of writing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from jitgate.core.api import TERMINAL_PHASES, RequestPhase

TRANSITIONS: Mapping[RequestPhase | None, frozenset[RequestPhase]] = MappingProxyType(
    {
        None: frozenset({"Pending", "Approved", "Denied"}),
        "Pending": frozenset({"Approved", "Denied", "Expired", "Cancelled"}),
        "Approved": frozenset({"Expired", "Revoked"}),
    }
)


class InvalidTransition(ValueError):
    pass


def is_terminal(phase: RequestPhase | None) -> bool:
    return phase in TERMINAL_PHASES


def can_transition(current: RequestPhase | None, target: RequestPhase) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def transition(current: RequestPhase | None, target: RequestPhase) -> RequestPhase:
    """`target`, if the table allows moving there from `current`."""
    if not can_transition(current, target):
        raise InvalidTransition(f"an AccessRequest cannot go from {current or 'new'} to {target}")
    return target
