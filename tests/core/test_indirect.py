"""Actions reached through a controller or by ending protection (core/admission/indirect)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import objects

from jitgate.core.admission.edits import FAILED_HISTORY, SUCCESSFUL_HISTORY, HistoryCut
from jitgate.core.admission.indirect import (
    HistoryJob,
    Listed,
    autoscaler_scale,
    cascade_deletes,
    deletable_resources,
    history_deletes,
    namespace_deletes,
    protection_lost,
    unprotect,
)
from jitgate.core.api import RequestedAction
from jitgate.core.policy import Governing, Namespace, UnreadablePolicy, governing_policies

BY_LABEL = {"selector": {"matchLabels": objects.PROTECTED_LABELS}}
PROTECTED = dict(objects.PROTECTED_LABELS)


@pytest.mark.parametrize(
    ("current", "low", "high", "forced"),
    [(3, 1, 1, 1), (1, 5, 5, 5), (3, 1, 10, 3), (3, 4, 10, 4), (12, 1, 10, 10)],
)
def test_an_autoscaler_is_a_scale_to_what_its_bounds_force(
    current: int, low: int, high: int, forced: int
) -> None:
    scale = autoscaler_scale(
        "prod", "pin", "deployments.apps", "web", current=current, low=low, high=high
    )
    assert scale is not None
    assert (scale.verb, scale.resource, scale.name) == ("scale", "deployments.apps", "web")
    assert scale.detail["replicas"] == {"old": current, "new": forced}
    assert scale.detail["via"] == "horizontalpodautoscalers.autoscaling/pin"
    assert scale.describe().endswith(f"(replicas {current} to {forced})")


def test_an_autoscaler_that_cannot_move_its_target_is_no_scale() -> None:
    pinned_in_place = autoscaler_scale(
        "prod", "a", "deployments.apps", "web", current=3, low=3, high=3
    )
    # The HPA controller leaves a target scaled to zero alone.
    at_zero = autoscaler_scale("prod", "a", "deployments.apps", "web", current=0, low=1, high=5)
    assert pinned_in_place is None and at_zero is None


def test_deleting_a_namespace_accounts_for_every_resource_whose_delete_is_protected() -> None:
    pods = objects.policy_model("pods", resources=["pods", "deployments.apps"])
    more = objects.policy_model("more", resources=["pods", "secrets"])
    no_delete = objects.policy_model("scale-only", actions=["scale"], resources=["jobs.batch"])
    elsewhere = objects.policy_model("elsewhere", namespaces={"names": ["dev"]})
    exempting = objects.policy_model(
        "exempting", resources=["configmaps"], exemptions={"users": ["alice"]}
    )
    policies = [pods, more, no_delete, elsewhere, exempting]
    prod = Namespace("prod", {})
    # In policy-name order, each resource once; alice is exempt from "exempting".
    assert deletable_resources(policies, prod, "alice", ()) == (
        "pods",
        "secrets",
        "deployments.apps",
    )
    assert deletable_resources(policies, prod, "bob", ()) == (
        "configmaps",
        "pods",
        "secrets",
        "deployments.apps",
    )
    assert deletable_resources(policies, Namespace("staging", {}), "alice", ()) == ()


def test_a_namespace_delete_is_a_delete_of_each_object_by_resource_then_name() -> None:
    pods = [Listed("web-1", "u1"), Listed("web-0", "u0")]
    deletes = namespace_deletes("prod", {"pods": pods, "secrets": [Listed("tls", "u2")]})
    assert [(d.verb, d.resource, d.name, d.namespace) for d in deletes] == [
        ("delete", "pods", "web-0", "prod"),
        ("delete", "pods", "web-1", "prod"),
        ("delete", "secrets", "tls", "prod"),
    ]
    assert {d.detail["via"] for d in deletes} == {"namespaces/prod"}
    assert deletes[0].describe() == "delete pod web-0 in namespace prod"


def test_protection_is_lost_when_a_policy_stops_covering_the_namespace() -> None:
    by_label = objects.policy_model("by-label", namespaces=BY_LABEL)
    by_name = objects.policy_model("by-name", namespaces={"names": ["prod"]})
    policies = [by_label, by_name]
    assert protection_lost(policies, "prod", PROTECTED, {}) == ("by-label",)
    assert protection_lost(policies, "prod", PROTECTED, {"jitgate.dev/protected": "no"}) == (
        "by-label",
    )
    # Other labels, or gaining protection, lose nothing.
    assert protection_lost(policies, "prod", PROTECTED, {**PROTECTED, "team": "x"}) == ()
    assert protection_lost(policies, "prod", {}, PROTECTED) == ()
    # A namespace listed by name stays protected by that policy whatever its labels.
    assert protection_lost([by_name], "prod", PROTECTED, {}) == ()


def test_an_invalid_policy_whose_namespaces_cannot_be_read_fails_closed() -> None:
    unknown = UnreadablePolicy("broken", "spec.actions: bad", None)
    assert protection_lost([unknown], "prod", {"a": "1"}, {"a": "2"}) == ("broken",)


def test_unprotect_is_governed_by_every_policy_covering_the_namespace_listed_or_not() -> None:
    policy = objects.policy_model("by-label", namespaces=BY_LABEL, actions=["exec"])
    action = unprotect("outcomes-label", ("by-label",), PROTECTED)
    assert action.describe() == "unprotect namespace outcomes-label"
    assert (action.verb, action.resource, action.namespace) == (
        "unprotect",
        "namespaces",
        "outcomes-label",
    )
    protected = Namespace("outcomes-label", PROTECTED)
    assert governing_policies([policy], protected, "unprotect", "namespaces") == (
        Governing((policy,))
    )
    assert governing_policies([policy], Namespace("x", {}), "unprotect", "namespaces") is None


def test_unprotect_is_requested_for_namespaces_only() -> None:
    assert RequestedAction(verb="unprotect", resource="namespaces").effective_resource == (
        "namespaces"
    )
    with pytest.raises(ValueError, match="unprotect needs resource namespaces"):
        RequestedAction(verb="unprotect", resource="pods")
    with pytest.raises(ValueError, match="unprotect needs resource namespaces"):
        RequestedAction(verb="unprotect")


def test_deleting_an_unprotected_owner_deletes_its_protected_dependents() -> None:
    objects = {
        "pods": [
            Listed("web-a", "p1", ("rs1",)),
            Listed("web-b", "p2", ("rs1", "other")),  # another owner that may not exist
            Listed("db-0", "p3", ("sts",)),
            Listed("loose", "p4"),
        ],
        "replicasets.apps": [Listed("web-5d8f", "rs1", ("deploy",))],
    }
    deletes = cascade_deletes("prod", "deployments.apps/web", "deploy", objects, ["pods"])
    assert [(d.resource, d.name, d.detail["via"]) for d in deletes] == [
        ("pods", "web-a", "deployments.apps/web"),
        ("pods", "web-b", "deployments.apps/web"),
    ]
    assert cascade_deletes("prod", "statefulsets.apps/db", "nobody", objects, ["pods"]) == []
    # A ReplicaSet that is protected itself is one of the deletes too.
    both = cascade_deletes("prod", "x", "deploy", objects, ["replicasets.apps", "pods"])
    assert [d.name for d in both] == ["web-5d8f", "web-a", "web-b"]


T0 = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def history_job(
    name: str,
    minute: int | None,
    *,
    succeeded: bool | None = True,
    controller: str | None = "nightly",
    readable: bool = True,
) -> HistoryJob:
    started = None if minute is None else T0 + timedelta(minutes=minute)
    return HistoryJob(name, controller, succeeded, started, start_readable=readable)


def deleted(actions: list) -> list[tuple[str, object]]:
    assert {(a.verb, a.resource, a.detail["owner"]) for a in actions} <= {
        ("delete", "jobs.batch", "cronjobs.batch/nightly")
    }
    return [(a.name, a.detail["via"]) for a in actions]


def test_a_history_cut_deletes_the_oldest_finished_jobs_beyond_the_limit() -> None:
    jobs = [
        history_job("nightly-3", 3),
        history_job("nightly-1", 1),
        history_job("nightly-2", 2),
        history_job("unstarted", None),  # sorts last: the controller keeps it longest
        history_job("tie-b", 0),
        history_job("tie-a", 0),  # same start: by name
        history_job("failed-1", 1, succeeded=False),
        history_job("running", 0, succeeded=None),
        history_job("someone-elses", 0, controller="other"),
        history_job("orphan", 0, controller=None),
    ]
    cut = [HistoryCut(SUCCESSFUL_HISTORY, True, 3)]
    assert deleted(history_deletes("prod", "nightly", cut, jobs)) == [
        ("nightly-1", SUCCESSFUL_HISTORY),
        ("tie-a", SUCCESSFUL_HISTORY),
        ("tie-b", SUCCESSFUL_HISTORY),
    ]
    failed = [HistoryCut(FAILED_HISTORY, False, 0)]
    assert deleted(history_deletes("prod", "nightly", failed, jobs)) == [
        ("failed-1", FAILED_HISTORY)
    ]
    assert history_deletes("prod", "nightly", [HistoryCut(SUCCESSFUL_HISTORY, True, 7)], jobs) == []


def test_a_history_whose_order_cannot_be_read_is_deleted_whole_beyond_the_limit() -> None:
    jobs = [history_job("a", 1), history_job("b", None, readable=False), history_job("c", 3)]
    cut = [HistoryCut(SUCCESSFUL_HISTORY, True, 2)]
    assert [name for name, _ in deleted(history_deletes("prod", "nightly", cut, jobs))] == [
        "a",
        "b",
        "c",
    ]
    within = [HistoryCut(SUCCESSFUL_HISTORY, True, 3)]
    assert history_deletes("prod", "nightly", within, jobs) == []
