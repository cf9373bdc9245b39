"""Which field edits amount to which protected action (docs/threat-model.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jitgate.core.admission.edits import (
    FAILED_HISTORY,
    SUCCESSFUL_HISTORY,
    Container,
    CronJobState,
    HistoryCut,
    JobState,
    ObjectState,
    Outcome,
    OwnerReference,
    PodState,
    WorkloadState,
    edit_outcome,
    history_cuts,
    resize_outcome,
)

MISSING = OwnerReference("v1", "ConfigMap", "nobody", "00000000-0000-4000-8000-000000000000")
RS = OwnerReference("apps/v1", "ReplicaSet", "web-7d4b9c", "rs-uid", True, True)
POD = PodState(
    phase="Running",
    containers=(Container("app", "registry.invalid/app:1"),),
    init_containers=(Container("setup", "registry.invalid/setup:1"),),
)


def pod(**fields: object) -> ObjectState:
    return ObjectState((RS,), pod=replace(POD, **fields))  # type: ignore[arg-type]


# ------------------------------------------------------------------ owner references


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((), (MISSING,)),  # an owner that never existed: collected at once
        ((RS,), (RS, MISSING)),  # added to a live owner
        ((RS,), (replace(RS, uid="other"),)),  # the same name, another object
        ((RS, MISSING), (MISSING,)),  # the owner keeping it alive removed
        ((RS,), (replace(RS, controller=False),)),  # the controller lets go of it
    ],
)
def test_owner_reference_changes_that_leave_owners_are_a_delete(before, after) -> None:
    assert edit_outcome(ObjectState(before), ObjectState(after)) == Outcome(
        "delete", "metadata.ownerReferences"
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [((RS,), ()), ((RS, MISSING), (MISSING, RS)), ((), ())],
)
def test_orphaning_reordering_or_keeping_owners_deletes_nothing(before, after) -> None:
    assert edit_outcome(ObjectState(before), ObjectState(after)) is None


# ------------------------------------------------------------------ live pods


def test_a_deadline_set_or_lowered_on_a_live_pod_is_its_delete() -> None:
    assert edit_outcome(pod(), pod(active_deadline_seconds=1)) == Outcome(
        "delete", "spec.activeDeadlineSeconds"
    )
    assert edit_outcome(
        pod(active_deadline_seconds=600), pod(active_deadline_seconds=60)
    ) == Outcome("delete", "spec.activeDeadlineSeconds")
    # Raising it (the API server refuses that anyway) ends nothing sooner.
    assert edit_outcome(pod(active_deadline_seconds=60), pod(active_deadline_seconds=600)) is None


def test_a_new_image_on_a_live_pod_is_its_delete_naming_each_container() -> None:
    attacker = (Container("app", "registry.invalid/attacker:1"),)
    assert edit_outcome(pod(), pod(containers=attacker)) == Outcome(
        "delete", "spec.containers[app].image"
    )
    both = pod(
        containers=attacker,
        init_containers=(Container("setup", "registry.invalid/attacker:1"),),
        active_deadline_seconds=5,
    )
    assert edit_outcome(pod(), both) == Outcome(
        "delete",
        "spec.activeDeadlineSeconds, spec.containers[app].image, spec.initContainers[setup].image",
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_runs_nothing_so_its_edits_are_not_protected(phase: str) -> None:
    finished = pod(phase=phase)
    edited = pod(phase=phase, active_deadline_seconds=1, containers=(Container("app", "x"),))
    assert edit_outcome(finished, edited) is None


def test_an_owner_change_and_a_pod_edit_are_one_delete_naming_both() -> None:
    before = pod()
    after = replace(pod(active_deadline_seconds=1), owners=(MISSING,))
    assert edit_outcome(before, after) == Outcome(
        "delete", "metadata.ownerReferences, spec.activeDeadlineSeconds"
    )


def test_a_resize_restarting_a_container_is_a_delete_of_the_pod() -> None:
    restarting = Container(
        "app", "img", {"memory": "64Mi"}, restarts_on_resize=frozenset({"memory"})
    )
    before = replace(POD, containers=(restarting,))
    more_memory = replace(restarting, requests={"memory": "128Mi"})
    more_cpu = replace(restarting, requests={"memory": "64Mi", "cpu": "200m"})
    assert resize_outcome(before, replace(POD, containers=(more_memory,))) == Outcome(
        "delete", "spec.containers[app].resources"
    )
    # cpu resizes in place (the default policy NotRequired): nothing restarts.
    assert resize_outcome(before, replace(POD, containers=(more_cpu,))) is None


# ------------------------------------------------------------------ workloads and Jobs


def test_replicas_are_a_direct_scale_and_ordinals_a_scale_through_them() -> None:
    def sts(replicas: int, start: int = 0) -> ObjectState:
        return ObjectState(workload=WorkloadState(replicas, start))

    assert edit_outcome(sts(3), sts(1)) == Outcome("scale", None, (3, 1))
    assert edit_outcome(sts(2), sts(2, 5)) == Outcome("scale", "spec.ordinals.start", (2, 2))
    assert edit_outcome(sts(2, 5), sts(2, 5)) is None


def job(**fields: object) -> ObjectState:
    return ObjectState(job=JobState(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "outcome"),
    [
        (job(parallelism=3), job(parallelism=1), Outcome("scale", "spec.parallelism", (3, 1))),
        (job(parallelism=1), job(parallelism=4), Outcome("scale", "spec.parallelism", (1, 4))),
        (
            job(parallelism=2),
            job(parallelism=2, suspend=True),
            Outcome("scale", "spec.suspend", (2, 0)),
        ),
        (
            job(parallelism=2, suspend=True),
            job(parallelism=2),
            Outcome("scale", "spec.suspend", (0, 2)),
        ),
        (
            job(parallelism=2),
            job(parallelism=2, active_deadline_seconds=1),
            Outcome("scale", "spec.activeDeadlineSeconds", (2, 0)),
        ),
        (job(backoff_limit=6), job(backoff_limit=0), Outcome("scale", "spec.backoffLimit", (1, 0))),
        (
            job(),
            job(ttl_seconds_after_finished=0),
            Outcome("delete", "spec.ttlSecondsAfterFinished"),
        ),
        (
            job(ttl_seconds_after_finished=3600),
            job(ttl_seconds_after_finished=60),
            Outcome("delete", "spec.ttlSecondsAfterFinished"),
        ),
    ],
)
def test_job_edits_that_end_or_add_pods_or_delete_the_job(before, after, outcome) -> None:
    assert edit_outcome(before, after) == outcome


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (job(parallelism=2, suspend=True), job(parallelism=5, suspend=True)),  # runs none
        (job(ttl_seconds_after_finished=60), job(ttl_seconds_after_finished=3600)),
        (job(backoff_limit=2), job(backoff_limit=6)),
        (job(suspend=True), job(suspend=True, active_deadline_seconds=1)),  # no pod to end
    ],
)
def test_job_edits_that_end_nothing_sooner_are_not_protected(before, after) -> None:
    assert edit_outcome(before, after) is None


@pytest.mark.parametrize(
    ("before", "after", "cuts"),
    [
        (CronJobState(3, 1), CronJobState(1, 1), [HistoryCut(SUCCESSFUL_HISTORY, True, 1)]),
        (CronJobState(3, 1), CronJobState(3, 0), [HistoryCut(FAILED_HISTORY, False, 0)]),
        (
            CronJobState(None, None),
            CronJobState(5, 2),
            [HistoryCut(SUCCESSFUL_HISTORY, True, 5), HistoryCut(FAILED_HISTORY, False, 2)],
        ),
    ],
)
def test_a_cronjob_history_limit_set_or_lowered_is_a_cut(before, after, cuts) -> None:
    assert list(history_cuts(before, after)) == cuts


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (CronJobState(3, 1), CronJobState(3, 1)),
        (CronJobState(3, 1), CronJobState(10, 5)),
        (CronJobState(3, 1), CronJobState(None, None)),  # no limit keeps every Job
    ],
)
def test_a_cronjob_history_kept_or_raised_cuts_nothing(before, after) -> None:
    assert history_cuts(before, after) == ()
