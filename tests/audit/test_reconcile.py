"""`jitgate audit reconcile`: jitgate's log against the API server's audit log, both ways,
on API server events shaped as kube-apiserver writes them (the real one: tests/e2e)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from jitgate.audit import Action, Actor, AuditEvent, open_audit_writer
from jitgate.audit.reconcile import parse_apiserver_log, reconcile
from jitgate.core.clock import ManualClock

from .conftest import KEY, START

HOOK = "connect.actions.jitgate.dev"


def event(
    audit_id: str, user: str, *, code: int = 101, record: Any = None, **target: str
) -> dict[str, Any]:
    annotations = {"authorization.k8s.io/decision": "allow"}
    if record is not None:
        annotations |= {
            f"{HOOK}/grant": "g", f"{HOOK}/writer": record.writer, f"{HOOK}/seq": str(record.seq),
            f"{HOOK}/leaf": record.leaf_hash,
        }  # fmt: skip
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete", "verb": "get",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "objectRef": {"resource": "pods", "namespace": "prod", "name": "web-0",
                      "apiVersion": "v1", "subresource": "exec", **target},
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": START.strftime("%Y-%m-%dT%H:%M:%S.123456Z"),
        "stageTimestamp": START.strftime("%Y-%m-%dT%H:%M:%S.223456Z"),
        "annotations": annotations,
    }  # fmt: skip


def exec_allowed(user: str = "alice", uid: str = "u1") -> AuditEvent:
    return AuditEvent(
        type="action.allowed", actor=Actor(user=user, groups=("developers",)), namespace="prod",
        action=Action(verb="exec", resource="pods", name="web-0", subresource="exec"),
        grant="g", request="r", admissionUID=uid, dryRun=False,
    )  # fmt: skip


async def log_with(file_url: str, *events: AuditEvent) -> list[Any]:
    async with open_audit_writer(
        file_url, writer_id="webhook-0", key=KEY, clock=ManualClock(START),
        maintenance_interval=None,
    ) as writer:  # fmt: skip
        return [await writer.append(e) for e in events]


def stored_records(file_url: str) -> list[dict[str, Any]]:
    segment = next(Path(file_url.removeprefix("file://"), "webhook-0").glob("*.jsonl"))
    return [json.loads(line) for line in segment.read_text().splitlines()]


def write_events(path: Path, *events: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


async def test_the_logs_agree_and_each_disagreement_is_named(
    cli: Any, file_url: str, tmp_path: Path
) -> None:
    genuine, forged = await log_with(file_url, exec_allowed(), exec_allowed("mallory", "u2"))
    apiserver = write_events(
        tmp_path / "audit.log",
        event("a1", "alice", record=genuine),
        event("a2", "bob", code=403),  # refused: nothing to account for
        event("a3", "system:serviceaccount:kube-system:gc", verb="delete"),  # exempt
    )
    result = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver)
    assert result.code == 1
    assert result.out.splitlines() == [
        "UNHEARD     webhook-0:2 2026-11-16T09:00:00Z action.allowed mallory exec prod/web-0: no "
        "API server event names it (forged, or lost from the API server's log)",
        "The logs DISAGREE: 1 finding(s), each named above; 1 allowed request(s) matched from "
        "2026-11-16T09:00:00Z to 2026-11-16T09:00:00Z.",
    ]

    apiserver = write_events(
        tmp_path / "audit.log",
        event("a1", "alice", record=genuine),
        event("a2", "mallory", record=forged),
        event("a4", "carol"),  # allowed, no jitgate record: jitgate was bypassed
    )
    result = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver)
    assert result.code == 1
    assert result.out.splitlines()[0] == (
        "UNRECORDED  2026-11-16T09:00:00Z carol get pods/exec prod/web-0 (auditID a4): allowed "
        "by the API server, and no jitgate record answers for it"
    )
    scoped = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver, "-n", "dev")
    assert scoped.code == 0, scoped.out
    assert scoped.out == (
        "The logs agree: 2 allowed request(s) matched both ways, 3 API server request(s) read "
        "from 2026-11-16T09:00:00Z to 2026-11-16T09:00:00Z.\n"
    )
    exempt = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver,
                 "--exempt-user", "carol")  # fmt: skip
    assert exempt.code == 0, exempt.out


async def test_an_event_naming_a_missing_or_different_record_is_named(
    file_url: str, tmp_path: Path
) -> None:
    (genuine,) = await log_with(file_url, exec_allowed())
    told = event("a1", "alice", record=genuine)
    zeros = "sha256:" + "00" * 32
    told["annotations"][f"{HOOK}/leaf"] = zeros
    missing = event("a2", "alice", record=genuine)
    missing["annotations"][f"{HOOK}/seq"] = "7"
    stranger = event("a3", "bob", record=genuine)
    records = stored_records(file_url)
    found = reconcile(
        parse_apiserver_log([json.dumps(e).encode() for e in (told, missing, stranger)]), records
    )
    assert [(f.kind, f.message.split(": ", 1)[-1]) for f in found.findings] == [
        ("mismatched", f"its leaf hash is not the one the API server was told ({zeros})"),
        ("mismatched", "2026-11-16T09:00:00Z alice get pods/exec prod/web-0 (auditID a2) names "
                       "jitgate record webhook-0:7, which the log does not have"),
        ("mismatched", "it says user 'alice', the API server 'bob'"),
    ]  # fmt: skip


async def test_one_named_record_accounts_for_its_whole_review(
    file_url: str, tmp_path: Path
) -> None:
    """A namespace delete is one review and a record per protected object in it; only the
    last allow's annotations reach the API server's event."""
    first, last = await log_with(
        file_url, exec_allowed(uid="ns-delete"), exec_allowed(uid="ns-delete")
    )
    records = stored_records(file_url)
    one = event(
        "a1",
        "alice",
        record=last,
        resource="namespaces",
        subresource="",
        name="prod",
        verb="delete",
    )
    found = reconcile(parse_apiserver_log([json.dumps(one).encode()]), records)
    assert (found.matched, found.findings) == (1, ())
    assert first.seq == 1


def test_a_file_that_is_not_an_api_server_audit_log_is_refused(
    cli: Any, file_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "audit.log"
    bad.write_text('{"kind": "Pod"}\n')
    result = cli("reconcile", "--audit", file_url, "--apiserver-audit", bad)
    assert result.code == 2
    assert "is not an API server audit log: line 1 is not an audit.k8s.io Event" in result.err
    assert cli("reconcile", "--audit", file_url, "--apiserver-audit", tmp_path / "nope").code == 2


async def test_one_collection_delete_accounts_for_each_item_it_deleted(file_url: str) -> None:
    """The API server logs a deletecollection once and admits each object on its own; the
    event keeps one item's annotations, the other items' records are still accounted for."""

    def item(name: str, uid: str) -> AuditEvent:
        action = Action(verb="delete", resource="pods", name=name, via="deletecollection")
        return AuditEvent(
            type="action.allowed", actor=Actor(user="alice", groups=("developers",)),
            namespace="prod", action=action, grant="g", request="r", admissionUID=uid,
            dryRun=False,
        )  # fmt: skip

    first, last = await log_with(file_url, item("nightly-0", "i0"), item("nightly-1", "i1"))
    records = stored_records(file_url)
    collection = event("a1", "alice", code=200, record=last, subresource="", name="")
    collection["verb"] = "deletecollection"
    found = reconcile(parse_apiserver_log([json.dumps(collection).encode()]), records)
    assert (found.matched, found.findings) == (1, ())

    elsewhere = event(
        "a1", "alice", code=200, record=last, subresource="", name="", namespace="dev"
    )
    elsewhere["verb"] = "deletecollection"
    found = reconcile(parse_apiserver_log([json.dumps(elsewhere).encode()]), records)
    assert [f.kind for f in found.findings] == ["mismatched", "unheard"]
    assert "nightly-0" in found.findings[1].message and first.seq == 1


# -- the API server's tries of one request -------------------------------------------------


def at(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def scale_allowed(
    uid: str,
    seconds: float,
    *,
    user: str = "alice",
    grant: str = "g",
    name: str = "web",
    verb: str = "scale",
    subresource: str | None = "scale",
) -> AuditEvent:
    """A try the webhook allowed (without --apiserver-traces each is recorded)."""
    action = Action(verb=verb, resource="deployments.apps", name=name, subresource=subresource)
    return AuditEvent(
        type="action.allowed", actor=Actor(user=user, groups=("developers",)), namespace="prod",
        action=action, grant=grant, request="r", admissionUID=uid, dryRun=False,
        time=at(seconds),
    )  # fmt: skip


def stages(
    audit_id: str,
    record: Any,
    *,
    received: float,
    completed: float,
    verb: str = "update",
    user: str = "alice",
    **target: str,
) -> list[dict[str, Any]]:
    """alice's request on Deployment prod/web (or `target`) as the API server logs it:
    received, then complete, naming the record of the try it kept the annotations of."""
    target = {"resource": "deployments", "apiGroup": "apps", "subresource": "scale",
              "name": "web"} | target  # fmt: skip
    done = event(audit_id, user, code=200, record=record, **target)
    done |= {"verb": verb, "requestReceivedTimestamp": stamp(at(received)),
             "stageTimestamp": stamp(at(completed))}  # fmt: skip
    started = done | {"stage": "RequestReceived", "stageTimestamp": stamp(at(received)),
                      "annotations": {}}  # fmt: skip
    del started["responseStatus"]
    return [started, done]


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def refused(audit_id: str, seconds: float) -> dict[str, Any]:
    """A request jitgate refused: nothing to account for, only the time the log covers."""
    when = stamp(at(seconds))
    return event(audit_id, "bob", code=403) | {
        "requestReceivedTimestamp": when,
        "stageTimestamp": when,
    }


async def test_the_api_servers_tries_of_a_contended_scale_are_accounted_for_by_it(
    cli: Any, file_url: str, tmp_path: Path
) -> None:
    """The API server validates a scale again after each write conflict, each try with a
    review uid of its own; its event names the record of one try only."""
    *_, scaled, _, patched, _, deleted = await log_with(
        file_url,
        scale_allowed("try-0", 1.0),  # the webhook's clock 0.1 s behind the API server's
        scale_allowed("try-1", 1.2),
        scale_allowed("try-2", 2.1),
        scale_allowed("try-3", 2.3),
        scale_allowed("patch-1", 5.4, subresource=None),  # the Deployment's own replicas
        scale_allowed("patch-2", 5.5, subresource=None),
        scale_allowed("delete-1", 6.2, verb="delete", subresource=None),
        scale_allowed("delete-2", 6.3, verb="delete", subresource=None),
    )
    apiserver = write_events(
        tmp_path / "audit.log",
        refused("a0", 0),
        *stages("a1", scaled, received=1.1, completed=2.4),
        *stages("a2", patched, received=5.3, completed=5.6, verb="patch", subresource=""),
        *stages("a3", deleted, received=6.1, completed=6.4, verb="delete", subresource=""),
        refused("a9", 10),
    )
    result = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver)
    assert (result.code, result.out) == (0, (
        "The logs agree: 3 allowed request(s) matched both ways (5 earlier tries of them "
        "recorded too), 5 API server request(s) read from 2026-11-16T09:00:00Z to "
        "2026-11-16T09:00:10Z.\n"
    )), result.out  # fmt: skip

    (forged,) = await log_with(file_url, scale_allowed("forged", 8, user="mallory"))
    result = cli("reconcile", "--audit", file_url, "--apiserver-audit", apiserver)
    assert result.code == 1
    assert result.out.splitlines()[1:] == [
        "The logs DISAGREE: 1 finding(s), each named above; 3 allowed request(s) matched (5 "
        "earlier tries of them recorded too) from 2026-11-16T09:00:00Z to 2026-11-16T09:00:10Z."
    ]
    assert result.out.startswith(f"UNHEARD     webhook-0:{forged.seq} "), result.out


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (scale_allowed("early", 0.9), "before the request was received (at the second)"),
        (scale_allowed("late", 3.0), "after the request was complete (at the second)"),
        (scale_allowed("other-grant", 2.1, grant="g2"), "another grant"),
        (scale_allowed("other-user", 2.1, user="bob"), "another user"),
        (scale_allowed("other-object", 2.1, name="api"), "another Deployment"),
        (scale_allowed("delete", 2.1, verb="delete", subresource=None), "another action"),
    ],
)
async def test_a_record_that_is_no_try_of_a_logged_request_stays_unheard(
    file_url: str, other: AuditEvent, why: str
) -> None:
    kept, _, stranger = await log_with(
        file_url, scale_allowed("kept", 1.5), scale_allowed("try", 1.8), other
    )
    events = [refused("a0", 0), *stages("a1", kept, received=1.1, completed=2.4),
              refused("a9", 10)]  # fmt: skip
    found = reconcile(parse_apiserver_log([json.dumps(e).encode() for e in events]),
                      stored_records(file_url))  # fmt: skip
    assert [(f.kind, f.message.split(" ", 1)[0]) for f in found.findings] == [
        ("unheard", f"webhook-0:{stranger.seq}")
    ], why
    assert (found.matched, found.tries) == (1, 1)


@pytest.mark.parametrize(
    "told",
    [{"name": "api"}, {"namespace": "dev"}, {"apiGroup": ""}, {"resource": "statefulsets"},
     {"user": "bob"}],
)  # fmt: skip
async def test_an_event_on_another_object_than_its_record_accounts_for_no_try(
    file_url: str, told: dict[str, str]
) -> None:
    """Only the user and object the API server names itself: records of another, even one
    its event names (rewritten on one side), are no tries of that request."""
    kept, _, named, stranger = await log_with(
        file_url, scale_allowed("kept", 1.5), scale_allowed("try", 1.8),
        scale_allowed("named", 5.5), scale_allowed("stranger", 5.2),
    )  # fmt: skip
    events = [refused("a0", 0), *stages("a1", kept, received=1.1, completed=2.4),
              *stages("a2", named, received=5.1, completed=5.8, **told),
              refused("a9", 10)]  # fmt: skip
    found = reconcile(parse_apiserver_log([json.dumps(e).encode() for e in events]),
                      stored_records(file_url))  # fmt: skip
    assert [f.message.split(" ", 1)[0] for f in found.findings if f.kind == "unheard"] == [
        f"webhook-0:{stranger.seq}"
    ]
    assert (found.matched, found.tries) == (2, 1)


async def test_an_exec_is_never_taken_for_a_try(file_url: str) -> None:
    """An exec has no write to conflict with, so the API server does not try it again: a
    second allowed exec within one's lifetime is a request of its own, named by no event."""
    kept, _, named, stranger = await log_with(
        file_url, scale_allowed("kept", 1.5), scale_allowed("try", 1.8),
        exec_allowed(uid="x1"), exec_allowed(uid="x2"),
    )  # fmt: skip
    events = [event("a0", "alice", record=named),  # received and complete at 09:00:00
              *stages("a1", kept, received=1.1, completed=2.4), refused("a9", 10)]  # fmt: skip
    found = reconcile(parse_apiserver_log([json.dumps(e).encode() for e in events]),
                      stored_records(file_url))  # fmt: skip
    assert [(f.kind, f.message.split(" ", 1)[0]) for f in found.findings] == [
        ("unheard", f"webhook-0:{stranger.seq}")
    ]
    assert (found.matched, found.tries) == (2, 1)
