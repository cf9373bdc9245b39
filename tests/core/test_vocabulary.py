"""Kinds and verbs as people write and read them."""

from __future__ import annotations

from jitgate.core.vocabulary import (
    KUBECTL_KINDS,
    SCALABLE_RESOURCES,
    kind_named,
    singular,
    workload_singular,
)


def test_kinds_are_shown_by_their_singular_for_tables() -> None:
    assert singular("deployments.apps") == "deployment"
    assert singular("pods") == "pod"
    assert singular("secrets") == "secret"
    assert singular("widgets.example.com") == "widgets.example.com"


def test_denials_name_workloads_by_singular_and_other_kinds_by_plural() -> None:
    assert workload_singular("statefulsets.apps") == "statefulset"
    assert workload_singular("cronjobs.batch") == "cronjobs.batch"
    assert workload_singular("widgets.example.com") == "widgets.example.com"


def test_every_spelling_names_exactly_one_kind() -> None:
    for kind in KUBECTL_KINDS:
        for spelling in kind.spellings:
            assert kind_named(spelling) == kind, spelling


def test_every_scalable_resource_is_a_known_workload() -> None:
    for resource in SCALABLE_RESOURCES:
        known = kind_named(resource)
        assert known is not None and known.workload
