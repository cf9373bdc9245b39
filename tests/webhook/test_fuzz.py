"""Fuzzing /validate and /mutate: arbitrary JSON and mutated valid reviews.

Invariants: never a 5xx; a 400 carries one sentence; a 200 is a well-formed AdmissionReview
answering the same uid; and a review made malformed (a field jitgate reads given another
JSON type, or a field it needs removed) is never allowed.

Most examples go in-process through `httpx.ASGITransport` for speed (the app, cache and audit
writer are the real ones); `test_mutated_reviews_over_https` sends a sample over real TLS.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jitgate.webhook.app import create_app
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.service import AdmissionService
from support import objects
from support.clocks import NOW
from support.personas import OPERATOR_USER

from jitgate.audit.connect import open_audit_writer
from jitgate.core.admission.approvals import spec_digest
from jitgate.core.api import AccessRequestSpec
from jitgate.core.clock import ManualClock

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


# ------------------------------------------------------------------ the app under test


@pytest.fixture
async def inproc(tmp_path: Path, reviews: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with a cache holding one grant for each kind of action, and a real writer."""
    clock = ManualClock(NOW)
    cache = ClusterCache()
    cache.replace(
        "namespaces", [{"metadata": {"name": "prod", "labels": {"jitgate.dev/protected": "true"}}}]
    )
    cache.replace("accesspolicies", [reviews.policy()])
    actions = [
        {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]},
        {"verb": "attach", "names": ["web-0"]},
        {"verb": "portforward", "names": ["web-0"]},
        {"verb": "delete", "resource": "pods", "names": ["web-0"]},
        {"verb": "scale", "resource": "deployments.apps", "names": ["web"]},
    ]
    cache.replace("accessrequests", [])
    cache.replace("grants", [reviews.grant(actions=actions)])
    async with open_audit_writer(
        f"file://{tmp_path}/audit", writer_id="fuzz", clock=clock
    ) as writer:
        service = AdmissionService(
            cache=cache, audit=writer, clock=clock, operator_user=OPERATOR_USER
        )
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            yield client


def stored_request(reviews: Any) -> dict[str, Any]:
    obj = reviews.access_request()
    obj["spec"]["requester"] = {"user": "alice", "groups": ["developers", "system:authenticated"]}
    obj["status"] = {"phase": "Pending", "policy": "production", "requiredApprovals": 1}
    return obj


def base_reviews(reviews: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Reviews the webhook allows, by name: (path, review)."""
    created = reviews.access_request()
    created["spec"]["requester"] = {
        "user": "alice",
        "groups": ["developers", "system:authenticated"],
    }
    old = stored_request(reviews)
    new = copy.deepcopy(old)
    digest = spec_digest(AccessRequestSpec.model_validate(old["spec"]))
    new["status"]["approvals"] = [
        {
            "decision": "Approve",
            "comment": "ok",
            "user": "bob",
            "groups": ["sre", "system:authenticated"],
            "time": "2026-11-21T10:00:00Z",
            "specDigest": digest,
        }
    ]
    approval = reviews.ar("UPDATE", new, old, sub_resource="status", user="bob", groups=["sre"])
    to_approve = copy.deepcopy(old)
    to_approve["status"]["approvals"] = [{"decision": "Approve", "comment": "ok"}]
    return {
        "exec": ("/validate", reviews.exec(command=["ls"])),
        "attach": ("/validate", reviews.attach()),
        "portforward": ("/validate", reviews.portforward()),
        "delete": ("/validate", reviews.delete(objects.pod("web-0"), ("", "v1", "pods"))),
        "scale": ("/validate", reviews.scale("web", 3, 5)),
        "deployment": ("/validate", reviews.deployment_update("web", 3, 5)),
        "ar-create": ("/validate", reviews.ar("CREATE", created, groups=["developers"])),
        "ar-approve": ("/validate", approval),
        "mutate-create": ("/mutate", reviews.ar("CREATE", reviews.access_request())),
        "mutate-approve": (
            "/mutate",
            reviews.ar("UPDATE", to_approve, old, sub_resource="status", user="bob"),
        ),
    }


# ------------------------------------------------------------------ what "malformed" means

# Paths (regular expressions over dotted paths, list indices as numbers) of fields jitgate
# reads, with their JSON type and whether a review without them is malformed ("item": a list
# item or map value, which may be removed but not be null).
Rule = tuple[str, str, bool | str]
_ENVELOPE: list[Rule] = [
    (r"apiVersion", "str", True),
    (r"kind", "str", True),
    (r"request", "dict", True),
    (r"request\.uid", "str", True),
    (r"request\.(kind|requestKind)", "dict", False),
    (r"request\.kind", "dict", True),
    (r"request\.(kind|requestKind)\.(group|version|kind)", "str", True),
    (r"request\.(resource|requestResource)", "dict", False),
    (r"request\.resource", "dict", True),
    (r"request\.(resource|requestResource)\.(group|version|resource)", "str", True),
    (r"request\.(subResource|requestSubResource)", "str", False),
    (r"request\.(name|namespace)", "str", False),
    (r"request\.operation", "str", True),
    (r"request\.userInfo", "dict", True),
    (r"request\.userInfo\.(username|uid)", "str", False),
    (r"request\.userInfo\.groups", "list", False),
    (r"request\.userInfo\.groups\.\d+", "str", "item"),
    (r"request\.userInfo\.extra", "dict", False),
    (r"request\.(object|oldObject|options)", "dict", False),
    (r"request\.dryRun", "bool", False),
]
_PER_BASE: dict[str, list[Rule]] = {
    "exec": [
        (r"request\.(name|namespace|subResource)", "str", True),
        (r"request\.object", "dict", True),
        (r"request\.object\.(container|kind)", "str", False),
        (r"request\.object\.command", "list", True),
        (r"request\.object\.command\.\d+", "str", "item"),
        (r"request\.object\.(stdin|stdout|stderr|tty)", "bool", False),
    ],
    "attach": [
        (r"request\.(name|namespace|subResource)", "str", True),
        (r"request\.object", "dict", True),
        (r"request\.object\.(container|kind)", "str", False),
        (r"request\.object\.(stdin|stdout|stderr|tty)", "bool", False),
    ],
    "portforward": [
        (r"request\.(name|namespace|subResource)", "str", True),
        (r"request\.object", "dict", True),
        (r"request\.object\.kind", "str", False),
        (r"request\.object\.ports", "list", False),
        (r"request\.object\.ports\.\d+", "int", "item"),
    ],
    "delete": [
        # Without a name it is one object of a deletecollection, named by oldObject.
        (r"request\.namespace", "str", True),
        (r"request\.name", "str", False),
        (r"request\.oldObject\.kind", "str", False),
        (r"request\.oldObject\.metadata", "dict", False),
        (r"request\.oldObject\.metadata\.(name|namespace)", "str", False),
        (r"request\.oldObject\.metadata\.labels", "dict", False),
        (r"request\.oldObject\.metadata\.labels\.[^.]+", "str", "item"),
        (r"request\.oldObject\.metadata\.ownerReferences", "list", False),
        (r"request\.oldObject\.metadata\.ownerReferences\.\d+", "dict", "item"),
        (r"request\.oldObject\.metadata\.ownerReferences\.\d+\.(kind|name)", "str", True),
        (r"request\.options\.propagationPolicy", "str", False),
    ],
    "scale": [
        (r"request\.(name|namespace)", "str", True),
        (r"request\.(object|oldObject)", "dict", True),
        (r"request\.(object|oldObject)\.spec", "dict", False),
        (r"request\.(object|oldObject)\.spec\.replicas", "int", False),
        (r"request\.(object|oldObject)\.metadata", "dict", False),
        (r"request\.(object|oldObject)\.metadata\.(name|namespace)", "str", False),
    ],
    "ar-create": [
        (r"request\.object", "dict", True),
        (r"request\.object\.spec", "dict", True),
        (r"request\.object\.spec\.(reason|requester)", "any", True),
        (r"request\.object\.spec\.(reason|duration|ticket)", "str", False),
        (r"request\.object\.spec\.breakGlass", "bool", False),
        (r"request\.object\.spec\.actions", "list", True),
        (r"request\.object\.spec\.actions\.\d+", "dict", "item"),
        (r"request\.object\.spec\.actions\.\d+\.verb", "str", True),
        (r"request\.object\.spec\.actions\.\d+\.(resource|container)", "str", False),
        (r"request\.object\.spec\.actions\.\d+\.(names|command)", "list", False),
        (r"request\.object\.spec\.actions\.\d+\.(names|command)\.\d+", "str", "item"),
        (r"request\.object\.spec\.requester", "dict", True),
        (r"request\.object\.spec\.requester\.user", "str", True),
        (r"request\.object\.spec\.requester\.groups", "list", False),
        (r"request\.object\.spec\.requester\.groups\.\d+", "str", "item"),
        (r"request\.object\.metadata\.annotations", "dict", False),
    ],
    "ar-approve": [
        (r"request\.(object|oldObject)", "dict", True),
        (r"request\.object\.status\.approvals", "list", False),  # absent: a no-op update
        (r"request\.object\.status\.approvals\.\d+", "dict", "item"),
        (r"request\.object\.status\.approvals\.\d+\.(decision|user|specDigest)", "str", True),
        (r"request\.object\.status\.approvals\.\d+\.(comment|time)", "str", False),
        (r"request\.object\.status\.approvals\.\d+\.groups", "list", False),
        (r"request\.object\.status\.approvals\.\d+\.groups\.\d+", "str", "item"),
        (r"request\.object\.metadata\.annotations", "dict", False),
    ],
    "mutate-create": [
        (r"request\.object", "dict", True),
        (r"request\.object\.spec", "dict", True),
        (r"request\.object\.metadata\.annotations", "dict", False),
    ],
    "mutate-approve": [
        (r"request\.object", "dict", True),
        (r"request\.object\.status\.approvals\.\d+", "dict", "item"),
        (r"request\.object\.metadata\.annotations", "dict", False),
    ],
}
_PER_BASE["deployment"] = _PER_BASE["scale"]


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return {float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


def must_refuse(base: str, path: str, value: Any, deleted: bool) -> bool:
    """Whether the mutation made the review malformed, so that allowing it would be a bug."""
    rules = _ENVELOPE + _PER_BASE[base]
    for pattern, expected, required in rules:
        if not re.fullmatch(pattern, path):
            continue
        if deleted and required == "item":
            continue  # a shorter list or a map without that key is still well-formed
        if deleted or value is None:
            if required:
                return True
        elif expected != "any" and _type_of(value) != expected:
            return True
    return False


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutate(
    review: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool
) -> dict[str, Any]:
    copied = copy.deepcopy(review)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copied


# ------------------------------------------------------------------ checks


def check_answer(response: httpx.Response, body: Any) -> dict[str, Any] | None:
    """The answer is a 400 with one sentence or a well-formed review; the response if 200."""
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert message.endswith(".") and "\n" not in message and "Traceback" not in message
        return None
    review = response.json()
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    answer: dict[str, Any] = review["response"]
    assert answer["uid"] == body["request"]["uid"]
    assert isinstance(answer["allowed"], bool)
    if not answer["allowed"]:
        assert answer["status"]["code"] == 403 and answer["status"]["message"]
    return answer


async def test_the_base_reviews_are_allowed(inproc: httpx.AsyncClient, reviews: Any) -> None:
    for name, (path, review) in base_reviews(reviews).items():
        answer = check_answer(await inproc.post(path, json=review), review)
        assert answer is not None and answer["allowed"], (name, answer)


@FUZZ
@given(body=JSON)
async def test_arbitrary_json(inproc: httpx.AsyncClient, body: Any) -> None:
    for path in ("/validate", "/mutate"):
        response = await inproc.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        check_answer(response, body)


@FUZZ
@given(body=st.binary(max_size=200))
async def test_arbitrary_bytes(inproc: httpx.AsyncClient, body: bytes) -> None:
    response = await inproc.post("/validate", content=body)
    assert response.status_code in (200, 400)
    if response.status_code == 200:  # only a valid review (never by chance here) gets a 200
        check_answer(response, json.loads(body))


@FUZZ
@given(body=JSON)
async def test_arbitrary_requests_in_a_valid_envelope(inproc: httpx.AsyncClient, body: Any) -> None:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}
    for path in ("/validate", "/mutate"):
        response = await inproc.post(path, json=review)
        assert response.status_code == 400, response.text


@FUZZ
@given(data=st.data())
async def test_mutated_reviews(
    inproc: httpx.AsyncClient, reviews: Any, data: st.DataObject
) -> None:
    bases = base_reviews(reviews)
    name = data.draw(st.sampled_from(sorted(bases)), label="base")
    endpoint, review = bases[name]
    path = data.draw(st.sampled_from(paths(review)), label="path")
    delete = data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(JSON, label="value")
    mutated = mutate(review, path, value, delete)
    response = await inproc.post(endpoint, json=mutated)
    request = mutated.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        assert response.status_code == 400
        return
    answer = check_answer(response, mutated)
    dotted = ".".join(str(part) for part in path)
    if answer is not None and must_refuse(name, dotted, value, delete):
        assert not answer["allowed"], (
            f"{name}: {dotted} -> {'deleted' if delete else value!r} was allowed"
        )
    if answer is not None and answer.get("patch") is not None:
        assert answer["patchType"] == "JSONPatch"


async def test_mutated_reviews_over_https(
    client: httpx.AsyncClient, reviews: Any, cluster: Any
) -> None:
    """A deterministic sample of type-breaking mutations, over real TLS to uvicorn."""
    rng = random.Random(20261121)
    bases = base_reviews(reviews)
    wrong = {"str": 7, "int": "7", "bool": "true", "list": {"a": 1}, "dict": ["a"], "any": None}
    checked = 0
    for name in sorted(bases):
        endpoint, review = bases[name]
        candidates = []
        for path in paths(review):
            dotted = ".".join(str(part) for part in path)
            for pattern, expected, _required in _ENVELOPE + _PER_BASE[name]:
                if re.fullmatch(pattern, dotted) and expected != "any":
                    candidates.append((path, dotted, wrong[expected]))
        for path, dotted, value in rng.sample(candidates, min(6, len(candidates))):
            mutated = mutate(review, path, value, False)
            answer = check_answer(await client.post(endpoint, json=mutated), mutated)
            assert answer is None or not answer["allowed"], (
                f"{name}: {dotted} -> {value!r} was allowed"
            )
            checked += 1
    assert checked >= 40
