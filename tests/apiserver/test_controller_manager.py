"""The tier's real kube-controller-manager acts: the garbage collector removes dependents,
the deployment controller makes pods, the HPA controller enforces its bounds without
metrics, the namespace controller empties and removes a deleted namespace. Each controller
acts as its own kube-system service account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import harness

pytestmark = pytest.mark.apiserver

NAMESPACE = "controllers"


@pytest.fixture(scope="module")
def cluster(
    kube_apiserver: harness.KubeAPIServer,
    kube_controller_manager_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[harness.KubeAPIServer]:
    api = kube_apiserver
    tmpdir = tmp_path_factory.mktemp("kube-controller-manager")
    with harness.start_kube_controller_manager(kube_controller_manager_binary, api, tmpdir):
        api.create_namespace(NAMESPACE)
        yield api


def _get(api: harness.KubeAPIServer, *args: str) -> Any:
    return json.loads(api.kubectl("admin", "get", *args, "-o", "json", check=True).stdout)


def _gone(api: harness.KubeAPIServer, *args: str) -> bool:
    """``kubectl wait --for=delete`` (a watch); True once the object is gone."""
    proc = api.kubectl("admin", "wait", "--for=delete", "--timeout=60s", *args)
    return proc.returncode == 0 and "NotFound" in api.kubectl("admin", "get", *args).stderr


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def test_garbage_collector_deletes_dependents_of_a_missing_owner(cluster):
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}
    cluster.apply("admin", {**owner, "metadata": {"name": "owner", "namespace": NAMESPACE}})
    uid = _get(cluster, "configmap", "owner", "-n", NAMESPACE)["metadata"]["uid"]
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dependent", "namespace": NAMESPACE, "ownerReferences": [reference]},
    }
    cluster.apply("admin", dependent)

    cluster.kubectl("admin", "delete", "configmap", "owner", "-n", NAMESPACE, check=True)
    assert _gone(cluster, "configmap/dependent", "-n", NAMESPACE)


def test_workload_and_autoscaler_controllers_act(cluster):
    cluster.apply("admin", _deployment("web", replicas=3))
    cluster.kubectl(
        "admin", "wait", "--for=jsonpath={.status.replicas}=3", "--timeout=60s",
        "deployment/web", "-n", NAMESPACE, check=True,
    )  # fmt: skip
    pods = _get(cluster, "pods", "-n", NAMESPACE, "-l", "app=web")["items"]
    assert len(pods) == 3
    # Pods are created by the replicaset controller's own service account.
    (owner,) = pods[0]["metadata"]["ownerReferences"]
    assert owner["kind"] == "ReplicaSet"

    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 1,
        },
    }
    cluster.apply("admin", hpa)
    # No metrics server: the HPA controller still forces the count into its bounds.
    cluster.kubectl(
        "admin", "wait", "--for=jsonpath={.spec.replicas}=1", "--timeout=60s",
        "deployment/web", "-n", NAMESPACE, check=True,
    )  # fmt: skip
    cluster.kubectl(
        "admin", "wait", "--for=jsonpath={.status.replicas}=1", "--timeout=60s",
        "deployment/web", "-n", NAMESPACE, check=True,
    )  # fmt: skip


def test_namespace_controller_removes_a_deleted_namespace(cluster):
    cluster.create_namespace("doomed")
    cluster.apply(
        "admin",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "doomed"}},
    )
    cluster.kubectl("admin", "delete", "namespace", "doomed", "--wait=false", check=True)
    assert _gone(cluster, "namespace/doomed")
