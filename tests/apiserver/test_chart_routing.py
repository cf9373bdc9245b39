"""The chart's webhook routing as the real API server applies it: its CEL matchConditions
compile for every value set, the paths to a protected outcome reach the webhook, and ordinary
writes (label edits, status updates, template rollouts) do not.

The chart's configurations point at a local webhook that allows everything and records what
it was asked, with ``failurePolicy: Ignore``, so the shared API server of this tier is not
changed for the other tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver.harness import KubeAPIServer
from apiserver.recorder import Recorder
from chart import render, value_sets

pytestmark = pytest.mark.apiserver

NAMESPACE = "routed"
DELETES_NAMESPACE = "routed-deletes"  # the namespace delete test ends NAMESPACE
SCALES_NAMESPACE = "routed-scales"
PLAIN_NAMESPACE = "routed-plain"  # not labelled: only its label changes are routed
PROTECTED = {"jitgate.dev/protected": "true"}
IMAGE = "registry.invalid/app:1"
NODE = "routing-node"  # the tier shares one API server: other modules have node-1


def _configurations(url: str, ca: bytes, values: dict[str, Any]) -> list[dict[str, Any]]:
    return render.webhook_configurations_for_url(url, ca, values)


@pytest.mark.parametrize("value_set", sorted(value_sets.VALUE_SETS))
def test_every_value_set_s_webhook_configurations_are_accepted(
    kube_apiserver: KubeAPIServer, value_set: str
) -> None:
    """The API server compiles matchConditions when it admits a configuration: a CEL mistake
    fails here, not at a user's install."""
    api = kube_apiserver
    configurations = _configurations(
        "https://127.0.0.1:1", api.ca.pem, value_sets.VALUE_SETS[value_set]
    )
    proc = api.kubectl(
        "admin", "create", "--dry-run=server", "-f", "-", input=render.dump(configurations)
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def routed(kube_apiserver: KubeAPIServer) -> Iterator[tuple[KubeAPIServer, Recorder]]:
    api = kube_apiserver
    recorder = Recorder(api)
    api.create_namespace(NAMESPACE, labels=PROTECTED)
    api.create_namespace(PLAIN_NAMESPACE)
    api.create_node(NODE)
    configurations = _configurations(
        recorder.url, api.ca.pem, {"webhook": {"failurePolicy": "Ignore"}}
    )
    api.apply("admin", *configurations)
    try:
        _wait_routed(api, recorder)
        yield api, recorder
    finally:
        for config in configurations:
            api.kubectl("admin", "delete", config["kind"], config["metadata"]["name"])
        recorder.server.shutdown()


def _wait_routed(api: KubeAPIServer, recorder: Recorder) -> None:
    """Until the configurations are effective (they reach the API server through an informer):
    a namespace label change is routed once they are."""
    deadline = time.monotonic() + 30
    flip = 0
    while not any(seen[1] == "namespaces" for seen in recorder.seen):
        assert time.monotonic() < deadline, "the chart's webhook configurations never took effect"
        flip += 1
        api.kubectl("admin", "label", "--overwrite", "namespace", PLAIN_NAMESPACE, f"probe={flip}")
        time.sleep(0.2)


RESIZABLE = {
    "name": "app",
    "image": IMAGE,
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    "resizePolicy": [
        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
        {"resourceName": "memory", "restartPolicy": "RestartContainer"},
    ],
}


def _resize(pod: str, cpu: str, memory: str) -> tuple[str, ...]:
    resources = {"requests": {"cpu": cpu, "memory": memory}}
    patch = {"spec": {"containers": [{"name": "app", "resources": resources}]}}
    # a strategic merge: containers are merged by name, not replaced
    return ("patch", "pod", pod, "-n", NAMESPACE, "--subresource=resize", "-p", json.dumps(patch))


def _objects() -> list[dict[str, Any]]:
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
    }
    meta = {"namespace": NAMESPACE, "labels": labels}
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", **meta},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": IMAGE}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", **meta},
            "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": template},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", **meta},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": labels},
                "template": template,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "legacy", **meta},
            "spec": {"replicas": 2, "selector": labels, "template": template},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", **meta}},
        # Resized in place; its memory only with a restart (what jitgate decides).
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", **meta},
            "spec": {"nodeName": NODE, "containers": [RESIZABLE]},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "nightly", **meta},
            "spec": {
                "parallelism": 2,
                "backoffLimit": 6,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "app", "image": IMAGE}],
                    }
                },
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", **meta},
            "spec": {
                "schedule": "0 3 * * *",
                "suspend": True,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "app", "image": IMAGE}],
                            }
                        }
                    }
                },
            },
        },
    ]


def _merge(kind: str, name: str, patch: dict[str, Any], *extra: str) -> tuple[str, ...]:
    return ("patch", kind, name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch), *extra)


OWNER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "name": "nobody",
    "uid": "00000000-0000-4000-8000-000000000000",
}
HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": NAMESPACE},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 1,
    },
}


def test_ordinary_writes_never_reach_the_webhook(routed: tuple[KubeAPIServer, Recorder]) -> None:
    api, recorder = routed
    api.apply("admin", *_objects())
    ordinary = [
        ("label", "pod", "web-0", "-n", NAMESPACE, "tier=front"),
        ("annotate", "deployment", "web", "-n", NAMESPACE, "note=hello"),
        ("label", "statefulset", "db", "-n", NAMESPACE, "tier=data"),
        ("label", "rc", "legacy", "-n", NAMESPACE, "tier=old"),
        ("label", "configmap", "settings", "-n", NAMESPACE, "tier=conf"),
        ("label", "job", "nightly", "-n", NAMESPACE, "tier=batch"),
        ("label", "cronjob", "nightly", "-n", NAMESPACE, "tier=batch"),
        # Keeping more history deletes nothing.
        _merge("cronjob", "nightly", {"spec": {"successfulJobsHistoryLimit": 5}}),
        _merge("cronjob", "nightly", {"spec": {"schedule": "0 4 * * *"}}),
        # A rollout through the Deployment: deployment work, not an action jitgate decides.
        ("set", "image", "deployment/web", "app=registry.invalid/app:2", "-n", NAMESPACE),
        _merge("pod", "web-0", {"status": {"phase": "Running"}}, "--subresource=status"),
        _merge("deployment", "web", {"status": {"observedGeneration": 1}}, "--subresource=status"),
        ("annotate", "namespace", NAMESPACE, "note=hello"),
    ]
    for args in ordinary:
        seen = recorder.during(lambda args=args: api.kubectl("admin", *args, check=True))
        assert seen == [], f"kubectl {' '.join(args)} reached the webhook: {seen}"


def test_every_path_to_a_protected_outcome_reaches_the_webhook(
    routed: tuple[KubeAPIServer, Recorder],
) -> None:
    api, recorder = routed
    api.apply("admin", *_objects())
    owner = {"metadata": {"ownerReferences": [OWNER]}}
    paths: list[tuple[tuple[str, ...], tuple[str, str, str, str]]] = [
        (_merge("deployment", "web", owner), ("UPDATE", "deployments", "", "web")),
        (_merge("configmap", "settings", owner), ("UPDATE", "configmaps", "", "settings")),
        (
            _merge("pod", "web-0", {"spec": {"activeDeadlineSeconds": 60}}),
            ("UPDATE", "pods", "", "web-0"),
        ),
        (
            ("set", "image", "pod/web-0", "app=registry.invalid/attacker:1", "-n", NAMESPACE),
            ("UPDATE", "pods", "", "web-0"),
        ),
        (
            _merge("deployment", "web", {"spec": {"replicas": 2}}),
            ("UPDATE", "deployments", "", "web"),
        ),
        (
            _merge("statefulset", "db", {"spec": {"ordinals": {"start": 5}}}),
            ("UPDATE", "statefulsets", "", "db"),
        ),
        (
            ("scale", "rc", "legacy", "--replicas=1", "-n", NAMESPACE),
            ("UPDATE", "replicationcontrollers", "scale", "legacy"),
        ),
        (_resize("web-1", "100m", "128Mi"), ("UPDATE", "pods", "resize", "web-1")),
        *[
            (_merge("job", "nightly", {"spec": spec}), ("UPDATE", "jobs", "", "nightly"))
            for spec in (
                {"parallelism": 1},
                {"suspend": True},
                {"activeDeadlineSeconds": 600},
                {"backoffLimit": 1},
                {"ttlSecondsAfterFinished": 60},
            )
        ],
        *[
            (_merge("cronjob", "nightly", {"spec": spec}), ("UPDATE", "cronjobs", "", "nightly"))
            for spec in ({"successfulJobsHistoryLimit": 1}, {"failedJobsHistoryLimit": 0})
        ],
        (
            ("delete", "configmap", "settings", "-n", NAMESPACE),
            ("DELETE", "configmaps", "", "settings"),
        ),
        (
            ("label", "namespace", NAMESPACE, "jitgate.dev/protected-"),
            ("UPDATE", "namespaces", "", NAMESPACE),
        ),
    ]
    for args, expected in paths:
        seen = recorder.during(lambda args=args: api.kubectl("admin", *args, check=True))
        assert expected in seen, f"kubectl {' '.join(args)} did not reach the webhook: {seen}"
    api.apply(
        "admin",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": PROTECTED},
        },
    )

    created = recorder.during(
        lambda: api.kubectl("admin", "create", "-f", "-", input=json.dumps(HPA), check=True)
    )
    assert ("CREATE", "horizontalpodautoscalers", "", "web") in created
    deleted = recorder.during(
        lambda: api.kubectl("admin", "delete", "namespace", NAMESPACE, "--wait=false", check=True)
    )
    assert ("DELETE", "namespaces", "", NAMESPACE) in deleted


def test_a_scale_reaches_the_webhook_only_to_change_the_count(
    routed: tuple[KubeAPIServer, Recorder],
) -> None:
    """A Scale that keeps the replica count changes nothing (the API server retrying a scale
    on the state another client's scale just wrote often is one): not routed. Every change of
    the count is, to and from 0 (which a Scale omits), PATCH (`kubectl scale`) and PUT
    (`--current-replicas`) alike."""
    api, recorder = routed
    api.create_namespace(SCALES_NAMESPACE, labels=PROTECTED)
    labels = {"app": "scaled"}
    api.apply(
        "admin",
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": SCALES_NAMESPACE, "labels": labels},
         "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "app", "image": IMAGE}]}}}},
    )  # fmt: skip
    scaled = ("UPDATE", "deployments", "scale", "web")

    def scale(*flags: str) -> list[tuple[str, str, str, str]]:
        args = ("scale", "deployment", "web", "-n", SCALES_NAMESPACE, *flags)
        return recorder.during(lambda: api.kubectl("admin", *args, check=True))

    assert scale("--replicas=3") == [], "a scale to the current count was routed"
    assert scaled in scale("--replicas=0")
    assert scale("--replicas=0") == [], "a scale from 0 to 0 was routed"
    assert scaled in scale("--replicas=2")
    assert scale("--current-replicas=2", "--replicas=2") == []
    assert scaled in scale("--current-replicas=2", "--replicas=5")


def test_a_delete_of_an_object_already_being_deleted_reaches_the_webhook_only_to_change_it(
    routed: tuple[KubeAPIServer, Recorder],
) -> None:
    """One DELETE is one call (the API server's second call, on the object it has just marked,
    is not routed), and so is every later DELETE that could change the pending deletion: a
    shorter grace period, a forced removal, another propagation policy than its finalizers."""
    api, recorder = routed
    api.create_namespace(DELETES_NAMESPACE, labels=PROTECTED)
    meta = {"namespace": DELETES_NAMESPACE, "labels": {"app": "gone"}}
    unscheduled = {"containers": [{"name": "app", "image": IMAGE}]}
    api.apply(
        "admin",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gone-now", **meta},
         "spec": unscheduled},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "terminating", **meta},
         "spec": {"nodeName": NODE, **unscheduled}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "held", "finalizers": ["example.com/hold"], **meta}},
    )  # fmt: skip

    def delete(kind: str, name: str, *flags: str) -> set[tuple[str, str, str, str]]:
        """What reached the webhook: the same review once, or again when the API server
        retried on a stale cached object (a retry jitgate's memo records once)."""
        args = ("delete", kind, name, "-n", DELETES_NAMESPACE, "--wait=false", *flags)
        return set(recorder.during(lambda: api.kubectl("admin", *args, check=True)))

    # Unscheduled: marked and removed at once; the API server validates both steps, and only
    # the first is routed.
    assert delete("pod", "gone-now") == {("DELETE", "pods", "", "gone-now")}
    # Scheduled, no kubelet: it stays terminating with its 30 s grace period (a DELETE that
    # does not shorten it is not even validated by the API server).
    pod = {("DELETE", "pods", "", "terminating")}
    assert delete("pod", "terminating") == pod
    assert delete("pod", "terminating", "--grace-period=5") == pod
    assert delete("pod", "terminating", "--force", "--grace-period=0") == pod
    # Held by a finalizer: every DELETE is validated again; routed only to change how its
    # dependents are collected.
    held = {("DELETE", "configmaps", "", "held")}
    assert delete("configmap", "held") == held
    assert delete("configmap", "held") == set(), "a DELETE changing nothing was routed"
    assert delete("configmap", "held", "--cascade=orphan") == held
    assert delete("configmap", "held", "--cascade=orphan") == set()
    assert delete("configmap", "held", "--cascade=foreground") == held
    assert delete("configmap", "held", "--cascade=background") == held
    api.kubectl(
        "admin", "patch", "configmap", "held", "-n", DELETES_NAMESPACE, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}', check=True,
    )  # fmt: skip
