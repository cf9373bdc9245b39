"""The decision memo's facts: the same review exactly when the facts are equal, and cheap for
the garbage collector to keep (`jitgate.webhook.memo`)."""

from __future__ import annotations

import gc
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jitgate.webhook.decode import decode
from jitgate.webhook.memo import DecisionMemo, facts_of
from jitgate.webhook.review import allow, parse_review
from support import reviews

from jitgate.core.actions import AttemptedAction

# Values that are equal as numbers but not as JSON of the same type, and lists and dicts that
# hold the same atoms in other shapes: what a key that forgets a type or a nesting would merge.
SCALARS = st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False, None, "", "0", "1", "a", "true"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _typed(value: Any) -> Any:
    """`value` compared as the memo's rule has it: equal as JSON of the same types."""
    if isinstance(value, dict):
        return ("dict", sorted((key, _typed(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, value)


def _exec_with(**detail: Any) -> AttemptedAction:
    return AttemptedAction("exec", "prod", "pods", "web-0", "app", ("ls",), False, detail)


@settings(max_examples=400, deadline=None)
@given(VALUES, VALUES)
def test_two_reviews_have_the_same_facts_exactly_when_their_details_are_equal(
    one: Any, other: Any
) -> None:
    request = parse_review(json.dumps(reviews.exec_review()).encode())
    same = facts_of(request, _exec_with(value=one)) == facts_of(request, _exec_with(value=other))
    assert same == (_typed(one) == _typed(other))


def test_a_remembered_review_leaves_the_collector_two_objects_that_it_stops_tracking() -> None:
    """The memo keeps 16,384 reviews: every object it keeps of one that the collector counts
    brings its next young collection (~3 ms) nearer, and nested facts kept 15."""
    memo = DecisionMemo()
    body = json.dumps(reviews.exec_review(command=["ls", "-l"], groups=["dev", "ops"])).encode()
    requests = [parse_review(body) for _ in range(100)]
    attempts = [
        (request, decode(request), allow(audit_annotations={"g": "g"})) for request in requests
    ]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for index, (request, attempted, answer) in enumerate(attempts):
            assert isinstance(attempted, AttemptedAction)
            memo.remember(f"uid-{index}", facts_of(request, attempted), attempted, answer, "c")
        kept = (gc.get_count()[0] - before) / len(attempts)
    finally:
        gc.enable()
    assert kept < 3  # its key and its (expiry, answer, grant)
    request, attempted, _ = attempts[0]
    assert isinstance(attempted, AttemptedAction)
    facts = facts_of(request, attempted)
    gc.collect()
    assert not gc.is_tracked(facts)
