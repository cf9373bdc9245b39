"""The AdmissionReview envelope: `render` writes exactly what encoding the response as a
dictionary writes, byte for byte, for any annotation and warning text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from jitgate.webhook.review import allow, deny, render

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
