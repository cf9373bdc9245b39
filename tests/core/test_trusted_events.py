"""An event built from its stored form without validation is the event validation builds."""

from __future__ import annotations

from typing import Any

import pytest
from support.clocks import NOW

from jitgate.core.events import AuditEvent

ACTOR = {"user": "alice", "groups": ["sre", "system:authenticated"]}
GRANTED = {
    "approvalChainDigest": "sha256:" + "ab" * 32,
    "approvers": ["bob"],
    "breakGlass": False,
    "policies": ["production"],
    "policy": "production",
}

# Every shape of record the webhook writes (`jitgate.webhook.audit`).
STORED: list[dict[str, Any]] = [
    {  # an allowed exec
        "type": "action.allowed",
        "actor": ACTOR,
        "namespace": "prod",
        "action": {
            "verb": "exec",
            "resource": "pods",
            "name": "web-0",
            "subresource": "exec",
            "container": "app",
            "command": ["ls", "-l"],
            "stdin": False,
            "tty": True,
        },
        "request": "fix-web-0",
        "grant": "fix-web-0-x7k2",
        "admissionUID": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "dryRun": False,
        "reason": "INC-1234",
        "context": {**GRANTED, "maxUses": 3, "use": 1, "ticket": "INC-1234"},
        "session": "s-1",
    },
    {  # a denied scale, its free-form detail nested
        "type": "action.denied",
        "actor": {"user": "mallory", "groups": []},
        "namespace": "prod",
        "action": {
            "verb": "scale",
            "resource": "deployments.apps",
            "name": "web",
            "replicas": {"old": 3, "new": 1},
            "bounds": {"minReplicas": 1, "maxReplicas": 1},
            "via": "horizontalpodautoscalers.autoscaling/pin",
        },
        "admissionUID": "u-2",
        "dryRun": True,
        "reason": "NoLiveGrant: no grant",
        "context": {"policies": ["a", "b"]},
    },
    {  # a delete recorded by digest, a scale from nothing
        "type": "action.allowed",
        "actor": ACTOR,
        "namespace": "prod",
        "action": {
            "verb": "delete",
            "resource": "pods",
            "name": "web-0",
            "objectDigest": "sha256:" + "cd" * 32,
            "owners": [{"kind": "ReplicaSet", "name": "web-7d"}],
            "labels": {"app": "web"},
            "replicas": {"new": 1},
        },
        "admissionUID": "u-3",
        "dryRun": False,
        "context": GRANTED,
    },
    {  # a refused write to a Grant, with no namespace
        "type": "action.denied",
        "actor": ACTOR,
        "action": {"verb": "update", "resource": "grants.jitgate.dev", "subresource": "status"},
        "grant": "g",
        "admissionUID": "u-4",
        "dryRun": False,
        "reason": "Forbidden: only the operator writes a Grant's status",
    },
]


@pytest.mark.parametrize("stored", STORED)
def test_a_trusted_event_stores_and_holds_what_the_validated_one_does(
    stored: dict[str, Any],
) -> None:
    trusted = AuditEvent.trusted(stored)
    validated = AuditEvent.model_validate(stored)
    assert trusted.body(NOW) == validated.body(NOW) == {**stored, "time": trusted.body(NOW)["time"]}
    assert trusted.model_dump() == validated.model_dump()
    assert trusted.model_dump_json() == validated.model_dump_json()  # the same order too
    assert trusted.model_fields_set == validated.model_fields_set


@pytest.mark.parametrize(
    "update", [{"caller": "verified"}, {"reason": None}, {"namespace": "other", "dry_run": True}]
)
def test_a_copy_of_a_trusted_event_stores_its_update(update: dict[str, Any]) -> None:
    trusted = AuditEvent.trusted(STORED[0]).model_copy(update=update)
    validated = AuditEvent.model_validate(STORED[0]).model_copy(update=update)
    assert trusted.body(NOW) == validated.body(NOW)
    assert trusted.model_dump() == validated.model_dump()


def test_a_copy_with_a_structured_update_is_validated() -> None:
    update = {"context": {"policies": ["other"]}}
    trusted = AuditEvent.trusted(STORED[0]).model_copy(update=update)
    assert trusted.body(NOW)["context"] == {"policies": ["other"]}


def test_a_stored_form_naming_no_field_is_refused() -> None:
    with pytest.raises(KeyError):
        AuditEvent.trusted({**STORED[3], "extra": 1})
