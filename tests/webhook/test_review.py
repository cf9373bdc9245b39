"""The AdmissionReview envelope: `render` writes exactly what encoding the response as a
dictionary writes, byte for byte, for any annotation and warning text; `parse_review` reads
every body exactly as its reference parser does (the same request, or the same 400)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jitgate.webhook.review import (
    AdmissionRequest,
    ReviewError,
    allow,
    deny,
    parse_review,
    reference_review,
    render,
)
from support import objects, reviews

TEXT = st.text(max_size=30)


@given(
    uid=TEXT,
    annotations=st.dictionaries(TEXT, TEXT, max_size=5),
    warnings=st.lists(TEXT, max_size=3),
)
def test_an_allow_renders_as_its_dictionary_encodes(
    uid: str, annotations: dict[str, str], warnings: list[str]
) -> None:
    answer = allow(audit_annotations=annotations or None, warnings=tuple(warnings))
    response: dict[str, object] = {"uid": uid, "allowed": True}
    if annotations:
        response["auditAnnotations"] = annotations
    if warnings:
        response["warnings"] = warnings
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    assert render(uid, answer) == json.dumps(review, separators=(",", ":")).encode()


@given(uid=TEXT, message=TEXT, reason=TEXT)
def test_a_denial_renders_as_its_dictionary_encodes(uid: str, message: str, reason: str) -> None:
    status = {"status": "Failure", "code": 403, "reason": reason or "Forbidden", "message": message}
    response = {"uid": uid, "allowed": False, "status": status}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    rendered = render(uid, deny(message, reason) if reason else deny(message))
    assert rendered == json.dumps(review, separators=(",", ":")).encode()


# ------------------------------------------------------------------ parsing: fast vs reference

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

BASES = [
    reviews.exec_review(command=["ls", "-l"], groups=["developers"]),
    reviews.attach_review(),
    reviews.portforward_review(),
    reviews.delete_review(objects.pod("web-0"), ("", "v1", "pods")),
    reviews.scale_review("web", 3, 5),
]
for base in BASES:
    base["request"]["userInfo"]["extra"] = {"authentication.kubernetes.io/node-name": ["n"]}


def outcome(parse: Callable[[bytes], AdmissionRequest], body: bytes) -> object:
    """What `parse` makes of `body`: every field it read, or the 400's message."""
    try:
        return repr(parse(body))  # NaN is not equal to itself; its repr is
    except ReviewError as error:
        return str(error)


def assert_same_reading(body: bytes) -> None:
    assert outcome(parse_review, body) == outcome(reference_review, body)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid review with one value replaced, one key removed or renamed (camelCase to
    snake_case), or a key given twice; as JSON that allows NaN and Infinity."""
    review = copy.deepcopy(draw(st.sampled_from(BASES)))
    path = draw(st.sampled_from(_paths(review)[1:]))
    *parents, last = path
    holder = review
    for key in parents:
        holder = holder[key]
    how = draw(st.sampled_from(["replace", "remove", "snake", "twice"]))
    if how == "replace":
        holder[last] = draw(JSON)
    elif how == "remove" or not isinstance(last, str):
        holder.pop(last)
    elif how == "snake":
        holder[re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), last)] = holder.pop(last)
    body = json.dumps(review)
    if how == "twice" and isinstance(last, str):
        key = json.dumps(last) + ": "
        body = body.replace(key, key + json.dumps(draw(JSON)) + ", " + key, 1)
    return body.encode()


@given(body=mutated())
@settings(max_examples=400)
def test_a_mutated_review_reads_as_the_reference_reads_it(body: bytes) -> None:
    assert_same_reading(body)


@given(value=JSON)
def test_any_json_reads_as_the_reference_reads_it(value: Any) -> None:
    assert_same_reading(json.dumps(value).encode())
    assert_same_reading(json.dumps({**BASES[0], "request": value}).encode())


@pytest.mark.parametrize(
    "fragment",
    [
        "NaN",  # only the reference accepts these
        "-Infinity",
        "1e400",
        "123456789012345678901234567890",
        "[" * 199 + "]" * 199,  # as deep as the reference allows
        "[" * 300 + "]" * 300,  # deeper than it allows: refused as invalid JSON
        '"\\ud800"',  # a lone surrogate
        "[" * 2000 + "]" * 2000,  # deeper than Python recurses
    ],
)
def test_edge_values_in_an_object_read_as_the_reference_reads_them(fragment: str) -> None:
    body = json.dumps(BASES[0]).replace('"stdin": false', f'"stdin": false, "x": {fragment}')
    assert '"x"' in body
    assert_same_reading(body.encode())


def test_a_review_reads_as_the_reference_reads_it() -> None:
    for base in BASES:
        body = json.dumps(base).encode()
        assert parse_review(body) == reference_review(body)
