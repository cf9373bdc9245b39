"""A revoked AccessRequest ends its grant in the webhook's index at once, without the operator:
learned from the replica's own admission of the revoke or from the AccessRequest watch, and
failing closed (an admitted revoke is kept until its request is gone)."""

from __future__ import annotations

import datetime as dt

from support import objects
from support.clocks import NOW

from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.denials import why_denied
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.revocations import Revocations

UID = objects.REQUEST_UID
EXEC = AttemptedAction("exec", "prod", "pods", "web-0")
SOON = NOW + dt.timedelta(minutes=1)


def index_with_grant() -> GrantIndex:
    index = GrantIndex()
    spec = objects.grant_model().spec
    index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-uid", spec))
    return index


def test_a_revoke_this_replica_admitted_ends_the_grant_at_once() -> None:
    index = index_with_grant()
    assert index.authorizing("alice", EXEC, SOON) is not None
    index.revocations.admitted("prod", "fix-web-0", UID)
    assert index.authorizing("alice", EXEC, SOON) is None
    held = index.get("prod", "fix-web-0-x7k2")
    assert held is not None and held.revoked and held.ending  # what the gateway asks
    reason = why_denied(index.for_user("prod", "alice"), "alice", EXEC, SOON)
    assert reason == "grant fix-web-0-x7k2 has been revoked"


def test_a_revoke_another_replica_admitted_arrives_through_the_watch() -> None:
    index = index_with_grant()
    index.revocations.watched("prod", "fix-web-0", UID, revoked=False)
    assert index.authorizing("alice", EXEC, SOON) is not None
    index.revocations.watched("prod", "fix-web-0", UID, revoked=True)
    assert index.authorizing("alice", EXEC, SOON) is None


def test_a_replica_that_starts_later_lists_the_revoked_requests() -> None:
    index = index_with_grant()
    index.revocations.listed([("prod", "fix-web-0", UID)], [("prod", "fix-web-0")])
    assert index.authorizing("alice", EXEC, SOON) is None


def test_an_admitted_revoke_is_kept_until_its_request_is_gone() -> None:
    revocations = Revocations()
    index = GrantIndex(revocations)
    spec = objects.grant_model().spec
    index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-uid", spec))
    revocations.admitted("prod", "fix-web-0", UID)
    # The watch delivers an older version without the annotation, or a relist still shows the
    # request: the admitted mark stays (fail closed).
    revocations.watched("prod", "fix-web-0", UID, revoked=False)
    revocations.listed([], [("prod", "fix-web-0")])
    assert index.authorizing("alice", EXEC, SOON) is None
    # Gone from the cluster: so is its grant (owner reference); the mark goes too.
    revocations.listed([], [])
    assert revocations.empty
    revocations.watched("prod", "fix-web-0", UID, revoked=True)
    revocations.deleted("prod", "fix-web-0")
    assert revocations.empty


def test_a_new_request_of_the_same_name_is_not_revoked_by_the_old_one() -> None:
    revocations = Revocations()
    index = GrantIndex(revocations)
    revocations.watched("prod", "fix-web-0", "old-uid", revoked=True)
    revocations.admitted("prod", "fix-web-0", "old-uid")
    revocations.watched("prod", "fix-web-0", UID, revoked=False)  # recreated
    spec = objects.grant_model().spec  # issued for the new request (UID)
    index.upsert(IndexedGrant("prod", "fix-web-0-x7k2", "g-uid", spec))
    assert index.authorizing("alice", EXEC, SOON) is not None


def test_other_requests_grants_are_untouched() -> None:
    index = index_with_grant()
    index.revocations.admitted("prod", "another-request", "other-uid")
    index.revocations.admitted("staging", "fix-web-0", UID)
    assert index.authorizing("alice", EXEC, SOON) is not None
