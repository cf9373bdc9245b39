"""The hash chain and canonical form: pure functions, no storage."""

import json

from support.clocks import NOW

from jitgate.audit.chain import (
    GENESIS,
    ChainHead,
    hash_and_stored_form,
    link,
    mac_matches,
    record_hash,
    stored_form,
)
from jitgate.audit.model import AuditRecord
from jitgate.core.canonical import canonical_json
from jitgate.core.events import Action, Actor, AuditEvent, Replicas

KEY = b"0123456789abcdef0123456789abcdef"


def test_first_record_links_to_genesis_and_hashes_its_canonical_json() -> None:
    event = AuditEvent(type="request.created", actor=Actor(user="alice", groups=("dev",)))
    stored = link(event.body(NOW), writer="operator-0", head=None, key=None)
    record = dict(stored.record)
    assert record["seq"] == 1
    assert record["prev"] == GENESIS
    assert record["writer"] == "operator-0"
    assert record["time"] == "2026-11-21T10:00:00.000000Z"
    assert "mac" not in record
    assert record["hash"] == record_hash(record)
    # The stored line is the hashed canonical form (sorted keys, no whitespace, UTF-8)
    # followed by the hash.
    unhashed = {k: v for k, v in record.items() if k != "hash"}
    assert stored.line == canonical_json(unhashed)[:-1] + f',"hash":"{record["hash"]}"}}\n'.encode()
    assert stored.line == stored_form(record) + b"\n"
    assert json.loads(stored.line) == record


def test_a_stored_line_gives_the_hash_and_stored_form_encoding_would() -> None:
    body = {"type": "a.b", "time": "t", "reason": 'ü "quoted" \\ \n', "n": 1.5, "none": None}
    for key in (None, KEY):
        stored = link(body, writer="w", head=None, key=key)
        line = stored.line.removesuffix(b"\n")
        record = json.loads(line)
        assert hash_and_stored_form(record, line) == (record_hash(record), line)
        assert hash_and_stored_form(record) == (record_hash(record), stored_form(record))


def test_a_field_after_the_hash_of_a_stored_line_is_hashed_like_any_other() -> None:
    stored = link({"type": "a.b", "time": "t"}, writer="w", head=None, key=KEY)
    line = stored.line.removesuffix(b"}\n") + b',"user":"mallory"}'
    record = json.loads(line)
    computed, _ = hash_and_stored_form(record, line)
    assert computed == record_hash(record) != stored.hash


def test_a_reformatted_line_still_hashes_by_its_content() -> None:
    stored = link({"type": "a.b", "time": "t"}, writer="w", head=None, key=None)
    spaced = json.dumps(stored.record, indent=1).encode()
    assert hash_and_stored_form(json.loads(spaced), spaced) == (
        stored.hash,
        stored.line.removesuffix(b"\n"),
    )


def test_each_record_links_to_the_previous_hash_and_counts_up() -> None:
    first = link({"type": "a.b", "time": "t"}, writer="w", head=None, key=None)
    second = link({"type": "a.b", "time": "t"}, writer="w", head=first.head, key=None)
    assert second.record["seq"] == 2
    assert second.record["prev"] == first.hash
    assert second.hash != first.hash


def test_mac_signs_the_hash_with_the_key() -> None:
    stored = link({"type": "a.b", "time": "t"}, writer="w", head=ChainHead(4, GENESIS), key=KEY)
    assert stored.record["mac"].startswith("hmac-sha256:")
    assert mac_matches(stored.hash, stored.record["mac"], KEY)
    assert not mac_matches(stored.hash, stored.record["mac"], b"another key of some length")


def test_canonical_json_is_utf8_and_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": "ü"}) == '{"a":"ü","b":1}'.encode()
    assert record_hash({"b": 1, "a": 2}) == record_hash({"a": 2, "b": 1})


def test_event_body_uses_wire_names_and_drops_unset_fields() -> None:
    event = AuditEvent(
        type="action.allowed",
        actor=Actor(user="alice", groups=("dev",)),
        namespace="prod",
        action=Action(
            verb="scale",
            resource="deployments.apps",
            name="web",
            replicas=Replicas(old=3, new=5),
            objectDigest="sha256:abc",
        ),
        admissionUID="uid-1",
        dryRun=True,
        grant="fix-web-x7k2",
    )
    body = event.body(NOW)
    assert body["admissionUID"] == "uid-1"
    assert body["dryRun"] is True
    assert body["action"]["replicas"] == {"old": 3, "new": 5}
    assert body["action"]["objectDigest"] == "sha256:abc"
    assert "reason" not in body and "request" not in body
    record = AuditRecord.from_stored(link(body, writer="webhook-0", head=None, key=None).record)
    assert record.admission_uid == "uid-1"
    assert record.when == NOW


def test_the_record_handed_back_is_the_record_stored() -> None:
    event = AuditEvent(
        type="action.allowed",
        actor=Actor(user="alice"),
        action=Action(verb="exec", resource="pods", name="web-0", tty=True),
        admissionUID="uid-1",
        dryRun=False,
    )
    stored = link(event.body(NOW), writer="webhook-0", head=None, key=KEY).record
    fast = AuditRecord.of_event(event, stored)
    assert fast == AuditRecord.from_stored(stored)
    # Printed alike too: the same fields in the same order.
    assert fast.model_dump_json() == AuditRecord.from_stored(stored).model_dump_json()
    assert fast.model_dump(mode="json", by_alias=True, exclude_none=True) == stored
