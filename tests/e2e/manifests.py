"""The objects the end-to-end tier applies: persona RBAC, chart values, pods and deployments."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from apiserver import harness

GROUP = "jitgate.dev"
VERSION = "v1alpha1"
RBAC = "rbac.authorization.k8s.io"
RELEASE_NAMESPACE = "jitgate"  # where the personas' service accounts live (see harness.py)
PROTECTED_LABEL = {"jitgate.dev/protected": "true"}
# prod is protected, dev is not; the outcome tests that delete, relabel or empty a whole
# namespace have protected namespaces of their own, and an unprotected twin to show that the
# controllers acted (tests/e2e/test_outcomes.py).
PROTECTED_NAMESPACES = ("prod", "outcomes-ns", "outcomes-label", "outcomes-batch")
NAMESPACES = ("prod", "dev", "outcomes-ns", "outcomes-label", "outcomes-batch", "outcomes-dev")
# Pods on NODE stay Pending (no kubelet): a connection to them fails after admission. Pods on
# KWOK_NODE run (kwok is its kubelet): exec, attach and port-forward reach local processes.
NODE = "node-1"
KWOK_NODE = harness.KWOK_NODE
POLICY = "production"
PENDING_TIMEOUT = "60s"

Obj = dict[str, Any]
# The chart's webhook Service, which also carries the session gateway's port.
GATEWAY_SERVICE = "jitgate-webhook"

# Chart values: the AccessPolicy the chart renders is the tier's policy; the release lives
# in the namespace of the personas' service accounts, so the chart's bindings name them.
# A user extra as an identity provider adds one (an OIDC claim mapping), for the gateway to
# pass on (the chart lets it impersonate the keys of gateway.userExtras).
TEAM_EXTRA = "acme.example/team"
CHART_VALUES: Obj = {
    "defaultPolicy": {
        "name": POLICY,
        "actions": ["exec", "attach", "portforward", "delete", "scale"],
        "resources": [
            "pods",
            "deployments.apps",
            "statefulsets.apps",
            "replicasets.apps",
            "replicationcontrollers",
            "jobs.batch",
        ],
        "approvers": {"users": [], "groups": ["sre"]},
        "maxDuration": "1h",
        "defaultDuration": "15m",
        "pendingTimeout": PENDING_TIMEOUT,
        # carol, an SRE on call, may self-activate an emergency grant; another SRE reviews it.
        "breakGlass": {"users": ["carol"], "groups": [], "maxDuration": "10m"},
    },
    "webhook": {"timeoutSeconds": 10},
    # The session gateway's RBAC comes from the chart; its front-proxy CA is the tier's
    # (cluster.install passes the file itself), so the value here only satisfies the schema.
    "gateway": {
        "enabled": True,
        "requestHeader": {"clientCA": "the tier's front-proxy CA"},
        # Kubernetes' own user extras (the chart's default) and one an authenticator adds.
        "userExtras": [
            "authentication.kubernetes.io/credential-id",
            "authentication.kubernetes.io/pod-name",
            TEAM_EXTRA,
        ],
    },
}

_POD_RULES: list[Obj] = [
    # kubectl jit exec, attach and port-forward (the session gateway's paths), as the chart's
    # requester role grants them.
    {
        "apiGroups": ["sessions.jitgate.dev"],
        "resources": ["sessions/api", "sessions/apis"],
        "verbs": ["get", "create"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    # As in the built-in edit role: an eviction deletes the pod too.
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch", "update"]},
    # exec over WebSockets starts as a GET; kube-apiserver authorises it as create.
    {
        "apiGroups": [""],
        "resources": ["pods/exec", "pods/attach", "pods/portforward"],
        "verbs": ["create", "get"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "patch", "update"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch", "update"],
    },
]

# What an attacker may do by RBAC (docs/threat-model.md, "Who the attacker is"): edit and label
# objects, create and edit HorizontalPodAutoscalers and workloads, delete collections, and
# label or delete the namespace itself (a RoleBinding in a namespace covers that namespace).
_WORKLOAD_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch", "update", "deletecollection"]},
    {
        "apiGroups": ["apps"],
        "resources": ["statefulsets", "replicasets"],
        "verbs": ["get", "list", "watch", "patch", "update", "delete"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["statefulsets/scale", "replicasets/scale"],
        "verbs": ["get", "patch", "update"],
    },
    {
        "apiGroups": [""],
        "resources": ["replicationcontrollers", "replicationcontrollers/scale"],
        "verbs": ["get", "list", "watch", "patch", "update", "delete"],
    },
    {
        "apiGroups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch", "delete"]},
    # ConfigMaps: any object can own others, and the garbage collector follows.
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["get", "patch", "update"]},
    {
        "apiGroups": ["batch"],
        "resources": ["jobs", "cronjobs"],
        "verbs": ["get", "list", "watch", "patch", "update"],
    },
]

PERSONA_ROLES: dict[str, tuple[str, list[Obj]]] = {
    # Requesters. The status and Grant rights are RBAC holes on purpose: the tier shows
    # that jitgate's webhook, not RBAC, refuses self-approval and hand-made Grants.
    "jitgate-e2e-developer": (
        "developers",
        [
            {
                "apiGroups": [GROUP],
                "resources": ["accessrequests"],
                "verbs": ["create", "get", "list", "watch", "patch", "update"],
            },
            {"apiGroups": [GROUP], "resources": ["accessrequests/status"], "verbs": ["patch"]},
            {
                "apiGroups": [GROUP],
                "resources": ["grants"],
                "verbs": ["create", "get", "list", "watch", "patch", "update", "delete"],
            },
            *_POD_RULES,
            *_WORKLOAD_RULES,
        ],
    ),
    # Approvers. They may also request (break-glass) and annotate (review, revoke).
    "jitgate-e2e-sre": (
        "sre",
        [
            {
                "apiGroups": [GROUP],
                "resources": ["accessrequests"],
                "verbs": ["create", "get", "list", "watch", "patch"],
            },
            {
                "apiGroups": [GROUP],
                "resources": ["accessrequests/status"],
                "verbs": ["get", "patch"],
            },
            {"apiGroups": [GROUP], "resources": ["grants"], "verbs": ["get", "list", "watch"]},
            *_POD_RULES,
        ],
    ),
}


def namespaces() -> list[Obj]:
    """The release namespace and :data:`NAMESPACES`, each with the ``default``
    ServiceAccount pods need (the serviceaccount controller does not run)."""
    objects: list[Obj] = []
    for name in (RELEASE_NAMESPACE, *NAMESPACES):
        metadata: Obj = {"name": name}
        if name in PROTECTED_NAMESPACES:
            metadata["labels"] = PROTECTED_LABEL
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name},
            }
        )
    return objects


def persona_rbac(namespaces: Iterable[str] = NAMESPACES) -> list[Obj]:
    """ClusterRoles for the personas' groups, bound in each of ``namespaces``."""
    objects: list[Obj] = []
    for role, (group, rules) in PERSONA_ROLES.items():
        objects.append(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": rules,
            }
        )
        for namespace in namespaces:
            objects.append(
                {
                    "apiVersion": f"{RBAC}/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": role, "namespace": namespace},
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": group}],
                }
            )
    return objects


def policy_reader_rbac() -> list[Obj]:
    """Approvers may read AccessPolicies (cluster-scoped, so a ClusterRoleBinding): the
    approver's queue, `kubectl jit list --pending`, lists only what the policies let them
    decide."""
    name = "jitgate-e2e-policy-reader"
    rules = [{"apiGroups": [GROUP], "resources": ["accesspolicies"], "verbs": ["get", "list"]}]
    return [
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": rules},
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
         "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "sre"}]},
    ]  # fmt: skip


CHART_RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def chart_rbac(rendered: Iterable[Obj]) -> list[Obj]:
    """The service accounts and RBAC of the operator and webhook, as the chart renders them."""
    return [obj for obj in rendered if obj.get("kind") in CHART_RBAC_KINDS]


def chart_policy(rendered: Iterable[Obj]) -> Obj:
    (policy,) = [obj for obj in rendered if obj.get("kind") == "AccessPolicy"]
    return policy


def pod(
    namespace: str, name: str, *, node: str | None = NODE, labels: dict[str, str] | None = None
) -> Obj:
    """A pod bound to ``node`` (no scheduler here). With ``node=None`` it stays unscheduled,
    so a delete removes it at once: no kubelet has to confirm a graceful deletion."""
    spec: Obj = {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}
    if node is not None:
        spec["nodeName"] = node
    metadata = {"name": name, "namespace": namespace, "labels": {"app": name, **(labels or {})}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def config_map(namespace: str, name: str) -> Obj:
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {}}


def owned(obj: Obj, owner: Obj) -> Obj:
    """``obj`` with ``owner`` (as the API server returned it) as its only owner."""
    meta = owner["metadata"]
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [reference]}}


def _pod_template(name: str) -> Obj:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }


def deployment(namespace: str, name: str, replicas: int = 2) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": _pod_template(name),
        },
    }


def statefulset(namespace: str, name: str, replicas: int = 2) -> Obj:
    """Pods are made in parallel: with no kubelet none becomes Ready, and the default
    OrderedReady policy would stop at the first."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(name),
        },
    }


def replication_controller(namespace: str, name: str, replicas: int = 2) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"app": name}, "template": _pod_template(name)},
    }


def autoscaler(namespace: str, name: str, target: str, *, low: int, high: int) -> Obj:
    """An HPA on Deployment ``target``; its controller enforces the bounds without metrics."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


def resizable_pod(namespace: str, name: str) -> Obj:
    """A pod whose memory resizes only with a restart of its container; cpu in place."""
    obj = pod(namespace, name)
    obj["spec"]["containers"][0].update(
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}},
        resizePolicy=[
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"},
        ],
    )
    return obj


def job(
    namespace: str,
    name: str,
    *,
    parallelism: int = 1,
    completions: int = 1,
    owners: list[Obj] | None = None,
) -> Obj:
    """A Job whose pods stay Pending (no scheduler): the Job controller counts them active;
    a pod set to Succeeded (``set_pod_phase``) completes it."""
    meta: Obj = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if owners:
        meta["ownerReferences"] = owners
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "parallelism": parallelism,
            "completions": completions,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                },
            },
        },
    }


def cronjob(namespace: str, name: str, *, successful: int = 3, failed: int = 1) -> Obj:
    """A suspended CronJob (it never starts a Job itself) keeping the given history."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": True,
            "successfulJobsHistoryLimit": successful,
            "failedJobsHistoryLimit": failed,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
                        }
                    }
                }
            },
        },
    }


def session_gateway(port: int, ca_pem: bytes) -> list[Obj]:
    """The chart's APIService for the session gateway, served by the local webhook process on
    ``port``: the aggregator reaches a Service of type ExternalName at its ``externalName``
    (``localhost``) and the APIService's port, checking the certificate for the Service's
    DNS name (``jitgate-webhook.jitgate.svc``)."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": GATEWAY_SERVICE, "namespace": RELEASE_NAMESPACE},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "sessions", "port": port, "protocol": "TCP"}],
        },
    }
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1alpha1.sessions.jitgate.dev"},
        "spec": {
            "group": "sessions.jitgate.dev",
            "version": "v1alpha1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"name": GATEWAY_SERVICE, "namespace": RELEASE_NAMESPACE, "port": port},
            "caBundle": base64.b64encode(ca_pem).decode(),
        },
    }
    return [service, api_service]
