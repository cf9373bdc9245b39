"""jitgate's words for actions and kinds, written once: verbs, their phrases, kubectl's names.

Policies, grants and requests name a verb and a plural resource, group-qualified for
non-core groups (`deployments.apps`). People name kinds as kubectl does (`deploy/web`,
`po web-0`) and read actions as phrases ("exec into pod web-0"). The API models, the
admission rules, the denial wording and the `kubectl jit` client all take these words from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verb = Literal["exec", "attach", "portforward", "delete", "scale", "unprotect"]
VERBS: tuple[Verb, ...] = ("exec", "attach", "portforward", "delete", "scale", "unprotect")
# Verbs that connect to a pod through one of its subresources (pods/exec, ...).
CONNECT_VERBS: frozenset[str] = frozenset({"exec", "attach", "portforward"})
# Verbs that act inside one container of the pod.
CONTAINER_VERBS: tuple[Verb, ...] = ("exec", "attach")
# How a sentence names the verb: "jitgate denied exec into pod web-0 ...".
PHRASES: dict[Verb, str] = {
    "exec": "exec into",
    "attach": "attach to",
    "portforward": "port-forward to",
    "delete": "delete",
    "scale": "scale",
    "unprotect": "unprotect",
}

PODS = "pods"
# `unprotect` switches a namespace's protection off (its labels stop matching a policy's
# selector); it applies to namespaces only, and every policy protecting a namespace protects
# it, whether or not the policy lists it.
NAMESPACES = "namespaces"
UNPROTECT_VERB: Verb = "unprotect"
JOBS = "jobs.batch"
CRONJOBS = "cronjobs.batch"
# The workloads with `spec.replicas` and a scale subresource.
REPLICATED_RESOURCES: tuple[str, ...] = (
    "deployments.apps",
    "statefulsets.apps",
    "replicasets.apps",
    "replicationcontrollers",
)
# The resources whose scale policies can protect, in the order messages and the CRD's
# validation rule list them. A Job has no scale subresource: its pods are its parallelism,
# or none while suspended (jitgate.core.admission.edits).
SCALABLE_RESOURCES: tuple[str, ...] = (*REPLICATED_RESOURCES, JOBS)


@dataclass(frozen=True)
class KubectlKind:
    """One kind as kubectl spells it."""

    resource: str  # plural, group-qualified for non-core groups: "deployments.apps"
    singular: str  # "deployment", as `kubectl get` names objects: deployment/web
    short_names: tuple[str, ...]  # "deploy"
    # Pods, the controllers running them and namespaces: what policies usually protect. A
    # denial names these by their singular and every other kind by its group-qualified
    # plural, which kubectl also accepts.
    workload: bool = False

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every spelling kubectl accepts without discovery: `deploy`, `deployment`,
        `deployments`, `deployment.apps`, `deployments.apps`."""
        plural, _, group = self.resource.partition(".")
        singular = f"{self.singular}.{group}" if group else self.singular
        return (self.singular, *self.short_names, plural, self.resource, singular)


# The kinds jitgate users act on, known without asking the API server.
KUBECTL_KINDS: tuple[KubectlKind, ...] = (
    KubectlKind(PODS, "pod", ("po",), workload=True),
    KubectlKind("deployments.apps", "deployment", ("deploy",), workload=True),
    KubectlKind("statefulsets.apps", "statefulset", ("sts",), workload=True),
    KubectlKind("replicasets.apps", "replicaset", ("rs",), workload=True),
    KubectlKind("daemonsets.apps", "daemonset", ("ds",), workload=True),
    KubectlKind("replicationcontrollers", "replicationcontroller", ("rc",), workload=True),
    KubectlKind(NAMESPACES, "namespace", ("ns",), workload=True),
    KubectlKind("services", "service", ("svc",)),
    KubectlKind("configmaps", "configmap", ("cm",)),
    KubectlKind("secrets", "secret", ()),
    KubectlKind("persistentvolumeclaims", "persistentvolumeclaim", ("pvc",)),
    KubectlKind(JOBS, "job", (), workload=True),
    KubectlKind(CRONJOBS, "cronjob", ("cj",)),
)
_BY_RESOURCE = {kind.resource: kind for kind in KUBECTL_KINDS}
_BY_SPELLING = {spelling: kind for kind in KUBECTL_KINDS for spelling in kind.spellings}


def group_qualified(resource: str, group: str) -> str:
    """`deployments` in group `apps` is `deployments.apps`; core resources stay bare."""
    return f"{resource}.{group}" if group else resource


def kind_named(spelling: str) -> KubectlKind | None:
    """The kind kubectl means by `deploy`, `po`, `deployments.apps`, ...; None if unknown."""
    return _BY_SPELLING.get(spelling)


def singular(resource: str) -> str:
    """`deployments.apps` → `deployment`, for tables; unknown resources stay as they are."""
    kind = _BY_RESOURCE.get(resource)
    return kind.singular if kind is not None else resource


def workload_singular(resource: str) -> str:
    """How a denial names a kind: `deployment` for workloads, else the plural (`secrets`)."""
    kind = _BY_RESOURCE.get(resource)
    return kind.singular if kind is not None and kind.workload else resource
