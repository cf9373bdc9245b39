"""Malformed input gets HTTP 400 and one sentence, never a 500, a traceback or an allow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

MiB = 1024 * 1024


def _assert_one_sentence(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "The body is not valid JSON."),
        (b"", "The body is not valid JSON."),
        (b"\xff\xfe", "The body is not valid JSON."),
        (b"[]", "The body is not a JSON object."),
        (b'"AdmissionReview"', "The body is not a JSON object."),
    ],
)
async def test_bodies_that_are_not_json_objects(
    client: httpx.AsyncClient, path: str, body: bytes, expected: str
) -> None:
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert _assert_one_sentence(response) == expected


def _without(review: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(review))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


def _with(review: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(review))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


async def test_envelopes_that_are_not_admission_reviews(
    client: httpx.AsyncClient, reviews: Any
) -> None:
    good = reviews.exec()
    cases = {
        "apiVersion": _with(good, "admission.k8s.io/v1beta1", "apiVersion"),
        "kind": _with(good, "TokenReview", "kind"),
        "request": _without(good, "request"),
        "request.uid": _without(good, "request", "uid"),
        "request.operation": _with(good, "PATCH", "request", "operation"),
        "request.userInfo": _without(good, "request", "userInfo"),
        "request.resource": _with(good, "pods", "request", "resource"),
        "request.dryRun": _with(good, "yes", "request", "dryRun"),
        "request.userInfo.groups.0": _with(good, [7], "request", "userInfo", "groups"),
    }
    for where, review in cases.items():
        for path in ("/validate", "/mutate"):
            message = _assert_one_sentence(await client.post(path, json=review))
            assert message.startswith("The body is not an admission.k8s.io/v1 AdmissionReview: ")
            assert f": {where}: " in message, message
    empty_uid = _with(good, "", "request", "uid")
    assert "request.uid" in _assert_one_sentence(await client.post("/validate", json=empty_uid))


async def test_a_body_over_three_mebibytes_is_refused(
    client: httpx.AsyncClient, reviews: Any
) -> None:
    review = reviews.exec()
    review["request"]["object"]["padding"] = "x" * (3 * MiB)
    message = _assert_one_sentence(await client.post("/validate", json=review))
    assert message == "The body is larger than 3 MiB."

    async def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        data = json.dumps(review).encode()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    response = await client.post(
        "/validate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert _assert_one_sentence(response) == "The body is larger than 3 MiB."
    # Just under the limit is fine.
    review["request"]["object"]["padding"] = "x" * (3 * MiB - 2048)
    response = await client.post("/validate", json=review)
    assert response.status_code == 200 and response.json()["response"]["allowed"] is False


async def test_reviews_it_cannot_decide_are_denied(
    webhook: Any, client: httpx.AsyncClient, reviews: Any, audit_log: Any
) -> None:
    undecidable = {
        "command is a string": _with(reviews.exec(), "ls -l", "request", "object", "command"),
        "stdin is a string": _with(reviews.exec(), "true", "request", "object", "stdin"),
        "no options object": _with(reviews.exec(), None, "request", "object"),
        "options of another kind": _with(
            reviews.exec(), "PodAttachOptions", "request", "object", "kind"
        ),
        "no pod name": _with(reviews.exec(), "", "request", "name"),
        "no namespace": _with(reviews.exec(), "", "request", "namespace"),
        "no subresource": _without(
            _without(reviews.exec(), "request", "subResource"), "request", "requestSubResource"
        ),
        "replicas is a string": _with(
            reviews.scale(), "5", "request", "object", "spec", "replicas"
        ),
        "negative replicas": _with(reviews.scale(), -1, "request", "object", "spec", "replicas"),
        "no old Scale": _with(reviews.scale(), None, "request", "oldObject"),
        "labels not strings": _with(
            reviews.delete(reviews.deployment(), ("apps", "v1", "deployments")),
            {"app": 1},
            "request",
            "oldObject",
            "metadata",
            "labels",
        ),
    }
    for what, review in undecidable.items():
        response = await client.post("/validate", json=review)
        assert response.status_code == 200, what
        answer = response.json()["response"]
        assert answer["allowed"] is False, what
        assert answer["status"]["code"] == 403
        assert answer["status"]["message"].startswith("jitgate cannot decide this request: "), what
    assert {r["reason"].split(":")[0] for r in audit_log()} == {"Undecidable"}
    assert len(audit_log()) == len(undecidable)


async def test_other_methods_and_paths_answer_one_sentence(client: httpx.AsyncClient) -> None:
    assert _assert_one_sentence(await client.get("/validate"), 405) == "Method Not Allowed."
    assert _assert_one_sentence(await client.get("/nowhere"), 404) == "Not Found."
    assert (await client.get("/docs")).status_code == 404  # no API docs on an admission endpoint


async def test_unprotected_reviews_of_any_kind_are_allowed(
    client: httpx.AsyncClient, reviews: Any
) -> None:
    create_pod = reviews.review(
        operation="CREATE",
        kind=("", "v1", "Pod"),
        resource=("", "v1", "pods"),
        namespace="prod",
        name="web-9",
        obj={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-9"}},
    )
    proxy = reviews.review(
        operation="CONNECT",
        kind=("", "v1", "PodProxyOptions"),
        resource=("", "v1", "pods"),
        namespace="prod",
        name="web-0",
        sub_resource="proxy",
        obj={"kind": "PodProxyOptions", "apiVersion": "v1", "path": "/"},
    )
    for review in (create_pod, proxy):
        response = await client.post("/validate", json=review)
        assert response.json()["response"]["allowed"] is True
        response = await client.post("/mutate", json=review)
        assert response.json()["response"] == {"uid": review["request"]["uid"], "allowed": True}
