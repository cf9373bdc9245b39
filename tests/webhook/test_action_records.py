"""A decision's record states its action as a validated `Action` would dump it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jitgate.webhook.audit import action_of
from jitgate.webhook.review import parse_review

from jitgate.core.actions import AttemptedAction
from jitgate.core.events import Action
from jitgate.devtools.admission_reviews import exec_review

REQUEST = parse_review(
    json.dumps(
        exec_review(user="alice", groups=["sre"], namespace="prod", pod="web-0", command=["ls"])
    ).encode()
)


@pytest.mark.parametrize(
    "detail",
    [
        {"container": "app", "stdin": False, "tty": True, "command": ["ls"]},  # text and flags
        {"kind": "Pod", "name": "web-0", "digest": "sha256:" + "ab" * 32, "via": None},
        {"ports": (8080, 9090), "labels": {"app": "web"}, "replicas": {"old": 3, "new": None}},
        {"owners": [{"kind": "ReplicaSet", "name": "web-7d"}], "subresource": "eviction"},
    ],
)
def test_an_actions_detail_is_stored_as_pydantic_dumps_it(detail: dict[str, Any]) -> None:
    attempted = AttemptedAction(
        "exec", "prod", "pods", "web-0", container="app", command=("ls",), detail=detail
    )
    apart = ("container", "command", "digest", "name", "subresource", "replicas")
    extra = {key: value for key, value in detail.items() if key not in apart}
    if "digest" in detail:
        extra["objectDigest"] = detail["digest"]
    validated = Action(
        verb="exec",
        resource="pods",
        name="web-0",
        subresource=detail.get("subresource", "exec"),  # the review's, unless stated
        container="app",
        command=("ls",),
        replicas=detail.get("replicas"),
        **extra,
    )
    assert action_of(attempted, REQUEST) == validated.model_dump(mode="json", exclude_none=True)
