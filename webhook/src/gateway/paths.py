"""The URLs the gateway serves: the aggregated API's own discovery, and what kubectl asks for
when `kubectl jit` points it at the gateway.

`kubectl jit exec -n prod web-0 ...` runs the real `kubectl exec` with its server URL set to
`<API server>/apis/sessions.jitgate.dev/v1alpha1/namespaces/prod/sessions/kubectl` (`prefix`),
so kubectl's own client does the terminal, resizing, Ctrl-C and exit codes. kubectl then asks,
below that prefix, for discovery (`/api`, `/apis`, `/api/v1`: answered here, naming pods
only), the pod (`GET /api/v1/namespaces/prod/pods/web-0`: read from the API server as the user)
and the stream (`/api/v1/namespaces/prod/pods/web-0/exec?...`, upgraded). The API server
authorizes each as the resource `sessions/api` (or `sessions/apis`) of group
`sessions.jitgate.dev` in that namespace, before the gateway sees it; the gateway serves a pod
only in the namespace of its prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

GROUP: Final = "sessions.jitgate.dev"
VERSION: Final = "v1alpha1"
GROUP_VERSION: Final = f"{GROUP}/{VERSION}"
RESOURCE: Final = "sessions"
CLIENT_NAME: Final = "kubectl"

StreamVerb = Literal["exec", "attach", "portforward"]
STREAM_VERBS: Final[tuple[StreamVerb, ...]] = ("exec", "attach", "portforward")


def prefix(namespace: str) -> str:
    """The path kubectl's server URL ends with, for sessions in `namespace`."""
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{RESOURCE}/{CLIENT_NAME}"


_NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
_UNDER_PREFIX = re.compile(
    rf"^/apis/{re.escape(GROUP_VERSION)}/namespaces/(?P<ns>{_NAME})/{RESOURCE}/{CLIENT_NAME}"
    r"(?P<rest>/.*)?$"
)
_POD = re.compile(
    rf"^/api/v1/namespaces/(?P<ns>{_NAME})/pods/(?P<pod>{_NAME})(/(?P<verb>[a-z]+))?/?$"
)


@dataclass(frozen=True)
class Document:
    """A fixed answer (discovery)."""

    body: dict[str, Any]


@dataclass(frozen=True)
class PodRead:
    """kubectl reading the pod before it connects."""

    namespace: str
    pod: str


@dataclass(frozen=True)
class StreamTarget:
    """An exec, attach or port-forward of one pod."""

    verb: StreamVerb
    namespace: str
    pod: str


@dataclass(frozen=True)
class Refused:
    status: int
    message: str


Route = Document | PodRead | StreamTarget | Refused

API_GROUP = {
    "kind": "APIGroup",
    "apiVersion": "v1",
    "name": GROUP,
    "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
    "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
}
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {"name": RESOURCE, "namespaced": True, "kind": "Session", "verbs": []},
    ],
}
# What kubectl's discovery finds below the prefix: the core group, with pods and their streams.
KUBECTL_DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    },
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get"],
                "shortNames": ["po"],
            },
            *(
                {
                    "name": f"pods/{verb}",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodExecOptions" if verb == "exec" else "Pod",
                    "verbs": ["create", "get"],
                }
                for verb in STREAM_VERBS
            ),
        ],
    },
}


# What the aggregator downloads to merge into the API server's OpenAPI documents: nothing.
OPENAPI: dict[str, dict[str, Any]] = {
    "/openapi/v2": {"swagger": "2.0", "info": {"title": GROUP, "version": VERSION}, "paths": {}},
    "/openapi/v3": {"paths": {}},
}


def route(path: str) -> Route:
    """What a request for `path` is."""
    if path in OPENAPI:
        return Document(OPENAPI[path])
    if path.rstrip("/") == f"/apis/{GROUP}":
        return Document(API_GROUP)
    if path.rstrip("/") == f"/apis/{GROUP_VERSION}":
        return Document(RESOURCES)
    under = _UNDER_PREFIX.match(path)
    if under is None:
        return Refused(404, f"the session gateway serves nothing at {path}")
    rest = (under.group("rest") or "/").rstrip("/") or "/"
    if rest in KUBECTL_DISCOVERY:
        return Document(KUBECTL_DISCOVERY[rest])
    pod = _POD.match(rest)
    if pod is None:
        return Refused(404, f"the session gateway serves pods and their streams only, not {rest}")
    namespace = pod.group("ns")
    if namespace != under.group("ns"):
        return Refused(
            403,
            f"sessions opened under namespace {under.group('ns')} reach only its pods, "
            f"not pods of namespace {namespace}",
        )
    verb = pod.group("verb")
    if verb is None:
        return PodRead(namespace, pod.group("pod"))
    for stream_verb in STREAM_VERBS:
        if verb == stream_verb:
            return StreamTarget(stream_verb, namespace, pod.group("pod"))
    return Refused(404, f"the session gateway serves exec, attach and portforward, not {verb}")
