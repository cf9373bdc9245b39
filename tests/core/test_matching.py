import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clocks import NOW

from jitgate.core.actions import AttemptedAction
from jitgate.core.api import Grant, GrantSpec, RequestedAction
from jitgate.core.canonical import digest
from jitgate.core.grant_index import GrantIndex, IndexedGrant
from jitgate.core.matching import (
    GrantTerms,
    action_mismatch,
    find_authorizing,
    is_live,
    window_mismatch,
)

GrantFactory = Callable[..., Grant]


def attempt(**fields: Any) -> AttemptedAction:
    base: dict[str, Any] = {
        "verb": "exec",
        "namespace": "prod",
        "resource": "pods",
        "name": "web-0",
        "container": "app",
        "command": ("ls",),
    }
    base.update(fields)
    return AttemptedAction(**base)


def authorized(
    grant: Grant, action: AttemptedAction, user: str = "alice", at: dt.datetime = NOW
) -> bool:
    return find_authorizing([("g", grant.spec, False)], user, action, at) is not None


def test_liveness_window_is_half_open(grant_factory: GrantFactory) -> None:
    spec = grant_factory().spec
    assert not is_live(spec, NOW - dt.timedelta(seconds=1))
    assert is_live(spec, NOW)
    assert is_live(spec, spec.expires_at - dt.timedelta(microseconds=1))
    assert not is_live(spec, spec.expires_at)
    assert not is_live(spec, NOW, being_deleted=True)


@pytest.mark.parametrize(
    ("granted", "attempted", "allowed"),
    [
        ({"verb": "exec"}, {}, True),
        ({"verb": "exec", "names": ["web-0"]}, {}, True),
        ({"verb": "exec", "names": ["web-1"]}, {}, False),
        ({"verb": "attach"}, {}, False),
        ({"verb": "exec", "container": "app"}, {}, True),
        ({"verb": "exec", "container": "sidecar"}, {}, False),
        ({"verb": "exec", "command": ["ls"]}, {}, True),
        ({"verb": "exec", "command": ["ls"]}, {"command": ("ls", "-l")}, False),
        ({"verb": "exec", "command": ["ls", "-l"]}, {"command": ("ls",)}, False),
        ({"verb": "exec", "command": ["ls"]}, {"interactive": True}, False),
        ({"verb": "exec"}, {"interactive": True, "command": ("sh",)}, True),
        ({"verb": "delete", "resource": "pods"}, {"verb": "delete", "command": None}, True),
        (
            {"verb": "delete", "resource": "deployments.apps"},
            {"verb": "delete", "resource": "pods", "command": None},
            False,
        ),
        (
            {"verb": "scale", "resource": "deployments.apps", "names": ["web"]},
            {"verb": "scale", "resource": "deployments.apps", "name": "web", "command": None},
            True,
        ),
    ],
)
def test_action_matching(
    grant_factory: GrantFactory, granted: dict[str, Any], attempted: dict[str, Any], allowed: bool
) -> None:
    assert authorized(grant_factory(actions=[granted]), attempt(**attempted)) is allowed


@pytest.mark.parametrize(
    ("granted", "attempted", "mismatch"),
    [
        ({"verb": "exec", "container": "app", "command": ["ls"]}, {}, None),
        ({"verb": "attach"}, {}, "verb"),
        ({"verb": "delete", "resource": "deployments.apps"}, {"verb": "delete"}, "resource"),
        ({"verb": "exec", "names": ["web-1"]}, {}, "name"),
        ({"verb": "exec", "names": ["web-1"], "container": "sidecar"}, {}, "name"),
        ({"verb": "exec", "container": "sidecar"}, {}, "container"),
        ({"verb": "exec", "container": "sidecar", "command": ["id"]}, {}, "container"),
        ({"verb": "exec", "command": ["ls"]}, {"interactive": True}, "interactive"),
        ({"verb": "exec", "command": ["id"]}, {"interactive": True}, "interactive"),
        ({"verb": "exec", "command": ["ls"]}, {"command": ("ls", "-l")}, "command"),
    ],
)
def test_a_mismatch_names_the_first_thing_the_grant_does_not_allow(
    granted: dict[str, Any], attempted: dict[str, Any], mismatch: str | None
) -> None:
    assert action_mismatch(RequestedAction.model_validate(granted), attempt(**attempted)) == (
        mismatch
    )


def test_a_grant_that_is_not_live_says_why(grant_factory: GrantFactory) -> None:
    spec = grant_factory().spec
    assert window_mismatch(spec, NOW) is None
    assert window_mismatch(spec, NOW - dt.timedelta(seconds=1)) == "not yet valid"
    assert window_mismatch(spec, spec.expires_at) == "expired"
    assert window_mismatch(spec, NOW, being_deleted=True) == "revoked"


def test_other_users_and_dead_grants_authorize_nothing(grant_factory: GrantFactory) -> None:
    grant = grant_factory()
    assert not authorized(grant, attempt(), user="bob")
    assert not authorized(grant, attempt(), at=grant.spec.expires_at)
    assert find_authorizing([("g", grant.spec, True)], "alice", attempt(), NOW) is None


def test_the_grant_expiring_first_is_chosen(grant_factory: GrantFactory) -> None:
    later = grant_factory(name="later", expires_at=NOW + dt.timedelta(hours=1))
    sooner = grant_factory(name="sooner", expires_at=NOW + dt.timedelta(minutes=5))
    chosen = find_authorizing(
        [("later", later.spec, False), ("sooner", sooner.spec, False)], "alice", attempt(), NOW
    )
    assert chosen == "sooner"


def indexed(grant: Grant) -> IndexedGrant:
    return IndexedGrant("prod", grant.metadata.name or "", "uid", grant.spec)


def test_index_add_update_remove(grant_factory: GrantFactory) -> None:
    index = GrantIndex()
    grant = grant_factory()
    index.upsert(indexed(grant))
    assert len(index) == 1
    assert index.authorizing("alice", attempt(), NOW) is not None
    assert index.authorizing("alice", attempt(namespace="dev"), NOW) is None
    # The same grant re-delivered for another user moves buckets rather than duplicating.
    index.upsert(indexed(grant_factory(user="bob")))
    assert len(index) == 1
    assert index.authorizing("alice", attempt(), NOW) is None
    assert index.authorizing("bob", attempt(), NOW) is not None
    index.remove("prod", "fix-web-0-x7k2")
    assert len(index) == 0
    assert index.for_user("prod", "bob") == ()


def test_an_indexed_grant_keeps_its_spec_and_approval_chain_exactly(
    grant_factory: GrantFactory,
) -> None:
    grant = grant_factory()
    entry = indexed(grant)
    assert entry.spec == grant.spec
    assert entry.user == grant.spec.user and entry.uid == "uid"
    assert entry.chain_digest == digest([a.to_wire() for a in grant.spec.approvals])
    assert entry == indexed(grant) and entry != indexed(grant_factory(user="bob"))
    with pytest.raises(AttributeError):
        entry.user = "mallory"  # type: ignore[misc]


def test_index_replace_all_swaps_contents(grant_factory: GrantFactory) -> None:
    index = GrantIndex()
    index.upsert(indexed(grant_factory(name="old")))
    index.replace_all([indexed(grant_factory(name="new", user="carol"))])
    assert len(index) == 1
    assert index.for_user("prod", "alice") == ()
    assert [g.name for g in index.for_user("prod", "carol")] == ["new"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=-120, max_value=120), min_size=1, max_size=8),
    probe=st.integers(min_value=-130, max_value=130),
)
def test_index_agrees_with_linear_matching(
    grant_factory: GrantFactory, offsets: list[int], probe: int
) -> None:
    grants = [
        grant_factory(name=f"g{i}", expires_at=NOW + dt.timedelta(minutes=offset + 121))
        for i, offset in enumerate(offsets)
    ]
    index = GrantIndex()
    for grant in grants:
        index.upsert(indexed(grant))
    at = NOW + dt.timedelta(minutes=probe + 121)
    linear = find_authorizing(
        [(g.metadata.name, g.spec, False) for g in grants], "alice", attempt(), at
    )
    found = index.authorizing("alice", attempt(), at)
    assert (found.name if found else None) == linear


def test_an_updated_grant_is_matched_by_its_new_terms(grant_factory: GrantFactory) -> None:
    index = GrantIndex()
    index.upsert(indexed(grant_factory(expires_at=NOW + dt.timedelta(minutes=5))))
    later = NOW + dt.timedelta(minutes=10)
    assert index.authorizing("alice", attempt(), later) is None
    # The operator's update: a longer window, for another pod.
    updated = grant_factory(
        expires_at=NOW + dt.timedelta(minutes=15), actions=[{"verb": "exec", "names": ["web-1"]}]
    )
    index.upsert(indexed(updated))
    entry = index.get("prod", updated.metadata.name or "")
    assert entry is not None and entry.spec == updated.spec and entry.terms.spec == updated.spec
    assert entry.terms.expires_at == NOW + dt.timedelta(minutes=15)
    assert index.authorizing("alice", attempt(), later) is None
    assert index.authorizing("alice", attempt(name="web-1"), later) == entry


def _spec_in_zone(
    start: dt.timedelta, length: dt.timedelta, zone: dt.tzinfo, **fields: Any
) -> GrantSpec:
    return GrantSpec.model_validate(
        {
            "user": "alice",
            "actions": [{"verb": "exec"}],
            "notBefore": (NOW + start).astimezone(zone).isoformat(),
            "expiresAt": (NOW + start + length).astimezone(zone).isoformat(),
            "accessRequest": {"name": "fix-web-0"},
            "policy": "production",
            **fields,
        }
    )


_MICROSECONDS = st.integers(min_value=-(10**7), max_value=10**7)


@given(
    zones=st.lists(st.integers(min_value=-14 * 60, max_value=14 * 60), min_size=1, max_size=4),
    starts=st.lists(_MICROSECONDS, min_size=4, max_size=4),
    lengths=st.lists(st.integers(min_value=1, max_value=10**7), min_size=4, max_size=4),
    limited=st.lists(st.booleans(), min_size=4, max_size=4),
    probe=_MICROSECONDS,
    probe_zone=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_terms_match_exactly_as_their_spec_whatever_its_time_zone(
    zones: list[int],
    starts: list[int],
    lengths: list[int],
    limited: list[bool],
    probe: int,
    probe_zone: int,
) -> None:
    """The index matches on `GrantTerms` (times moved to UTC once): every answer, and the
    grant chosen among several, is the spec's own, at every instant and in any zone."""
    specs = [
        _spec_in_zone(
            dt.timedelta(microseconds=start),
            dt.timedelta(microseconds=length),
            dt.timezone(dt.timedelta(minutes=zone)),
            **({"maxUses": 2} if limits else {}),
        )
        for zone, start, length, limits in zip(zones * 4, starts, lengths, limited, strict=False)
    ]
    terms = [GrantTerms.of(spec) for spec in specs]
    at = (NOW + dt.timedelta(microseconds=probe)).astimezone(
        dt.timezone(dt.timedelta(minutes=probe_zone))
    )
    for spec, term in zip(specs, terms, strict=True):
        assert window_mismatch(term, at) == window_mismatch(spec, at)
        assert term.expires_at - at == spec.expires_at - at
    by_spec = find_authorizing([(i, s, False) for i, s in enumerate(specs)], "alice", attempt(), at)
    by_terms = find_authorizing(
        [(i, t, False) for i, t in enumerate(terms)], "alice", attempt(), at
    )
    assert by_terms == by_spec


def test_a_scale_grant_pinning_replicas_allows_only_that_count() -> None:
    granted = RequestedAction.model_validate(
        {"verb": "scale", "resource": "deployments.apps", "names": ["web"], "replicas": 5}
    )

    def scale_to(new: int) -> AttemptedAction:
        return AttemptedAction("scale", "prod", "deployments.apps", "web",
                               detail={"replicas": {"old": 2, "new": new}})  # fmt: skip

    assert action_mismatch(granted, scale_to(5)) is None
    assert action_mismatch(granted, scale_to(9)) == "replicas"
    unpinned = granted.model_copy(update={"replicas": None})
    assert action_mismatch(unpinned, scale_to(9)) is None


def test_replicas_apply_only_to_scale() -> None:
    with pytest.raises(ValueError, match="replicas applies only to scale"):
        RequestedAction.model_validate({"verb": "exec", "replicas": 1})
