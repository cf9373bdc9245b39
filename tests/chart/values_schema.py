"""The source of charts/jitgate/values.schema.json.

The schema is generated rather than hand-written so that the Kubernetes types values pass
through (affinity, tolerations, resources, label selectors, env, network policy peers and
rules) are the real ones, taken from the OpenAPI schemas kubernetes-validate bundles for the
oldest supported Kubernetes (1.29, strict: `additionalProperties: false` everywhere), and every
jitgate object below closes its keys too. test_values_schema.py checks the committed file is
exactly what this produces. After changing values.yaml, update SCHEMA here and run

    .venv/bin/python tests/chart/values_schema.py
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[2] / "charts" / "jitgate" / "values.schema.json"
K8S_SCHEMA_VERSION = "1.29.0"

# Kubernetes definitions referenced from the values (their closure is copied in).
K8S = "io.k8s.api.core.v1."
AFFINITY = K8S + "Affinity"
TOLERATION = K8S + "Toleration"
SPREAD = K8S + "TopologySpreadConstraint"
RESOURCES = K8S + "ResourceRequirements"
LOCAL_REF = K8S + "LocalObjectReference"
ENV_VAR = K8S + "EnvVar"
LABEL_SELECTOR = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
NP_PEER = "io.k8s.api.networking.v1.NetworkPolicyPeer"
NP_EGRESS = "io.k8s.api.networking.v1.NetworkPolicyEgressRule"
K8S_ROOTS = (
    AFFINITY,
    TOLERATION,
    SPREAD,
    RESOURCES,
    LOCAL_REF,
    ENV_VAR,
    LABEL_SELECTOR,
    NP_PEER,
    NP_EGRESS,
)

LOG_LEVELS = ["debug", "info", "warning", "error"]
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
# `jitgate audit` spans: weeks and days, then a Go duration (timefmt.parse_span); empty: none.
RETENTION_SPAN = r"^$|^([0-9]+w)?([0-9]+d)?(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def obj(description: str, **properties: Any) -> dict[str, Any]:
    """A closed object: only the listed keys, none required (Helm merges the defaults in)."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
    }


def string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def boolean(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def integer(description: str, minimum: int | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "description": description, **extra}
    if minimum is not None:
        out["minimum"] = minimum
    return out


def array(description: str, items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": items, **extra}


def strings(description: str, **item: Any) -> dict[str, Any]:
    return array(description, {"type": "string", "minLength": 1, **item})


def string_map(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    }


def duration(description: str) -> dict[str, Any]:
    return string(description, pattern=GO_DURATION)


def subjects(description: str) -> dict[str, Any]:
    return obj(description, users=strings("User names."), groups=strings("Group names."))


def secret_ref(description: str) -> dict[str, Any]:
    return obj(
        description,
        existingSecret=string("Name of an existing Secret; empty: not used."),
        key=string("Key in that Secret.", minLength=1, pattern=SECRET_KEY),
    )


def _with(base: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """`base`, a closed object, with more properties."""
    return {**base, "properties": {**base["properties"], **properties}}


def api_resources(description: str) -> dict[str, Any]:
    return array(
        description,
        obj(
            "An API group and some of its resources.",
            apiGroup=string('API group ("" for the core group).'),
            resources=strings("Plural resource names.", pattern=DNS_LABEL),
        )
        | {"required": ["apiGroup", "resources"]},
    )


def pdb(description: str) -> dict[str, Any]:
    return obj(
        description,
        enabled=boolean("Create it (only when replicas > 1)."),
        minAvailable={
            "description": "Pods that must stay available: a number or a percentage.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^[0-9]+%$"},
            ],
        },
    )


def pod_placement() -> dict[str, Any]:
    return {
        "podAnnotations": string_map("Annotations on the pods."),
        "podLabels": string_map("Labels on the pods."),
        "priorityClassName": string("PriorityClass of the pods."),
        "nodeSelector": string_map("Node selector of the pods."),
        "tolerations": array("Tolerations of the pods.", ref(TOLERATION)),
        "affinity": ref(AFFINITY) | {"description": "Affinity; empty: prefer one per node."},
        "topologySpreadConstraints": array("Topology spread constraints.", ref(SPREAD)),
    }


def service_account(description: str) -> dict[str, Any]:
    return obj(
        description,
        name=string(
            "Name; empty: a name derived from the release.", pattern=r"^$|" + DNS_SUBDOMAIN
        ),
        annotations=string_map("Annotations on the ServiceAccount."),
    )


def container(component: str) -> dict[str, Any]:
    return {
        "extraArgs": strings(f"Extra flags for `jitgate {component}`."),
        "extraEnv": array("Extra environment variables.", ref(ENV_VAR)),
        "resources": ref(RESOURCES) | {"description": "CPU and memory requests and limits."},
    }


WEBHOOK = obj(
    "The admission webhook.",
    replicas=integer("Replicas (protected actions fail closed: run 2 or more).", 1),
    failurePolicy=string(
        "failurePolicy of the protected-action webhooks.", enum=["Fail", "Ignore"]
    ),
    timeoutSeconds=integer("Webhook call timeout in seconds.", 1, maximum=30),
    protectedNamespaceSelector=ref(LABEL_SELECTOR)
    | {"description": "Namespaces whose protected actions go through the webhook."},
    excludedNamespaces=strings(
        "Namespaces no jitgate webhook sees, besides kube-system and the release namespace.",
        pattern=DNS_LABEL,
    ),
    deleteResources=api_resources("Resources whose DELETE goes through the webhook."),
    scaleResources=api_resources("Workloads whose scale goes through the webhook."),
    matchConditions=obj(
        "CEL matchConditions on the webhooks.", enabled=boolean("Use matchConditions.")
    ),
    exempt=subjects("Users and groups never intercepted on protected actions."),
    grantGarbageCollectors=strings("Users that may delete Grants besides the operator."),
    logLevel=string("Log level.", enum=LOG_LEVELS),
    service=obj("The webhook Service.", port=integer("Service port.", 1, maximum=65535)),
    clientAuth=obj(
        "Decide only reviews presenting the API server's client certificate (--client-ca).",
        enabled=boolean("Run the webhook with --client-ca."),
        mode=string("Where the client CA comes from.", enum=["helm", "existingSecret"]),
        existingSecret=string("Secret with the client CA (key ca.crt), for existingSecret."),
        validityDays=integer("Validity of the generated CA and certificate, in days.", 1),
    ),
    apiserverTraces=boolean(
        "Run the webhook with --apiserver-traces: the API server's trace id names each user "
        "request. Only with a tracing configuration on the kube-apiserver (--tracing-config-file)."
    ),
    podDisruptionBudget=pdb("PodDisruptionBudget of the webhook."),
    serviceAccount=service_account("The webhook's ServiceAccount."),
    **container("webhook"),
    **pod_placement(),
)

OPERATOR = obj(
    "The kopf operator.",
    replicas=integer("Replicas; more than one needs peering.", 1),
    peering=obj(
        "kopf peering: one active replica, the others on standby.",
        enabled=boolean("Run with --peering."),
        name=string("Name of the ClusterKopfPeering object.", pattern=DNS_SUBDOMAIN),
        createCRDs=boolean("Install kopf's peering CRDs."),
    ),
    retention=duration("How long finished AccessRequests are kept."),
    notify=obj(
        "Notifications the operator POSTs.",
        existingSecret=string("Secret with the URL; empty: no notifications."),
        key=string("Key in that Secret.", minLength=1, pattern=SECRET_KEY),
        format=string("Payload format.", enum=["slack", "generic"]),
    ),
    slack=obj(
        "Approve from Slack: interactive messages and the signed click endpoint.",
        enabled=boolean("Turn the Slack app on."),
        channel=string("Channel id requests are posted to."),
        existingSecret=string("Secret with the bot token and the signing secret."),
        botTokenKey=string("Key of the bot token.", minLength=1, pattern=SECRET_KEY),
        signingSecretKey=string("Key of the signing secret.", minLength=1, pattern=SECRET_KEY),
        users={
            "type": "object",
            "description": "Slack user id to the Kubernetes user and groups a click acts as.",
            "propertyNames": {"pattern": "^[A-Z0-9]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["user"],
                "properties": {
                    "user": string(
                        "Kubernetes user name (never a system: identity).",
                        minLength=1,
                        **{"not": {"pattern": "^system:"}},
                    ),
                    "groups": strings("Its groups."),
                },
            },
        },
        port=integer("Container port of the click endpoint.", 1, maximum=65535),
        tls=obj(
            "TLS of the click endpoint.",
            existingSecret=string("kubernetes.io/tls Secret with its certificate."),
        ),
        service=obj(
            "Service in front of the click endpoint.",
            type=string("Service type.", enum=["ClusterIP", "NodePort", "LoadBalancer"]),
            port=integer("Service port.", 1, maximum=65535),
            annotations=string_map("Annotations on the Service."),
        ),
    ),
    metricsPort=integer("Prometheus metrics port; 0: off.", 0, maximum=65535),
    logLevel=string("Log level.", enum=LOG_LEVELS),
    podDisruptionBudget=pdb("PodDisruptionBudget of the operator."),
    serviceAccount=service_account("The operator's ServiceAccount."),
    **container("operator"),
    **pod_placement(),
)

ACTIONS = ["exec", "attach", "portforward", "delete", "scale", "unprotect"]

DEFAULT_POLICY = obj(
    "An AccessPolicy created with the chart.",
    enabled=boolean("Create it."),
    name=string("Name of the AccessPolicy.", pattern=DNS_SUBDOMAIN),
    namespaces=obj(
        "Namespaces the policy applies to.",
        names=strings("Namespaces by name.", pattern=DNS_LABEL),
        selector=ref(LABEL_SELECTOR) | {"description": "Namespaces by label selector."},
    ),
    actions=array(
        "Protected actions.", {"type": "string", "enum": ACTIONS}, uniqueItems=True, minItems=1
    ),
    resources=strings(
        "Resources whose delete/scale is protected (plural, group-qualified for non-core).",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9.-]+)?$",
    ),
    requesters=subjects("Who may request; empty: any authenticated user."),
    approvers=subjects("Who may approve."),
    requiredApprovals=integer("Distinct approvals needed.", 1),
    allowSelfApproval=boolean("Whether requesters may approve their own requests."),
    maxDuration=duration("Longest grant."),
    defaultDuration=duration("Grant duration when the request names none."),
    pendingTimeout=duration("Unapproved requests expire after this."),
    breakGlass=obj(
        "Emergency self-activation.",
        users=strings("User names."),
        groups=strings("Group names."),
        maxDuration=duration("Longest emergency grant."),
    ),
    exemptions=subjects("Users and groups this policy never intercepts."),
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Values of the jitgate Helm chart",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": {"type": "object", "description": "Set by a parent chart; not used."},
        "nameOverride": string("Override of the chart name in names and labels."),
        "fullnameOverride": string("Override of the full name prefix."),
        "clusterDomain": string("Cluster DNS domain.", minLength=1, pattern=DNS_SUBDOMAIN),
        "commonLabels": string_map("Labels on every object."),
        "image": obj(
            "The jitgate image.",
            repository=string("Image repository.", minLength=1),
            tag=string("Tag; empty: the chart's appVersion."),
            digest=string(
                "Digest; when set, used instead of the tag.", pattern=r"^$|^sha256:[a-f0-9]{64}$"
            ),
            pullPolicy=string("Pull policy.", enum=["Always", "IfNotPresent", "Never"]),
        ),
        "imagePullSecrets": array("Image pull secrets.", ref(LOCAL_REF)),
        "audit": obj(
            "The audit log.",
            sink=string("Where the log is kept.", enum=["file", "postgres"]),
            file=obj(
                "A PersistentVolumeClaim per pod.",
                size=string("Volume size.", pattern=QUANTITY),
                storageClassName=string("StorageClass; empty: the default class."),
                accessModes=array(
                    "Access modes.",
                    {
                        "type": "string",
                        "enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"],
                    },
                    minItems=1,
                    uniqueItems=True,
                ),
                retentionPolicy=obj(
                    "What happens to the volumes when the StatefulSets go.",
                    whenDeleted=string("On StatefulSet deletion.", enum=["Retain", "Delete"]),
                    whenScaled=string("On scale-down.", enum=["Retain", "Delete"]),
                ),
                retention=string(
                    "How long records are kept; empty: forever.", pattern=RETENTION_SPAN
                ),
            ),
            postgres=_with(
                secret_ref("Secret with the PostgreSQL URL."),
                pruner=_with(
                    secret_ref("Secret with the pruning role's PostgreSQL URL."),
                    enabled=boolean("Run `jitgate audit prune` as a CronJob."),
                    schedule=string("Cron schedule.", minLength=1),
                    resources=ref(RESOURCES) | {"description": "Resources of the pruner."},
                ),
            ),
            hmac=secret_ref("Secret with the HMAC key; empty: generated and kept."),
            checkpoints=_with(
                secret_ref("Secret with the Ed25519 checkpoint signer key; empty: none."),
                witnesses=array(
                    "tlog-witness URLs each writer submits its checkpoints to for cosignatures.",
                    {"type": "string", "pattern": r"^https?://[^\s]+$"},
                    uniqueItems=True,
                ),
                peerWitnesses=secret_ref(
                    "Secret with the witness key the webhook replicas cosign one another's and "
                    "the operator's checkpoints with; empty: no peer witnessing."
                ),
            ),
        )
        | {
            "if": {"properties": {"sink": {"const": "postgres"}}, "required": ["sink"]},
            "then": {
                "properties": {
                    "postgres": {
                        "properties": {"existingSecret": {"minLength": 1}},
                        "required": ["existingSecret"],
                    }
                },
                "required": ["postgres"],
            },
        },
        "tls": obj(
            "TLS of the webhook.",
            mode=string("Who issues the certificate.", enum=["helm", "cert-manager"]),
            helm=obj(
                "Certificates generated by Helm.",
                validityDays=integer("Validity in days.", 1),
            ),
            certManager=obj(
                "Certificates issued by cert-manager.",
                issuerRef=obj(
                    "Issuer; empty name: a self-signed CA of the chart's own.",
                    name=string("Issuer name."),
                    kind=string("Issuer kind (Issuer, ClusterIssuer, ...).", minLength=1),
                    group=string("Issuer API group.", minLength=1),
                ),
                duration=duration("Certificate lifetime."),
                renewBefore=duration("Renew this long before expiry."),
            ),
        ),
        "webhook": WEBHOOK,
        "operator": OPERATOR,
        "gateway": obj(
            "The session gateway behind kubectl jit exec, attach and port-forward.",
            enabled=boolean("Serve the aggregated API sessions.jitgate.dev."),
            port=integer("Container and Service port of the gateway.", 1, maximum=65535),
            requestHeader=obj(
                "Whom the gateway believes: the API server's front proxy.",
                clientCA=string("The front-proxy CA (PEM); required when enabled."),
                allowedNames=strings(
                    "Common names of the proxy client certificate; empty: any the CA signed.",
                    minLength=1,
                ),
            ),
            userExtras=strings(
                "User extras (keys) the gateway may impersonate when it opens a stream as its "
                "user.",
                pattern=r"^[^*]+$",
            ),
            maxSessions=integer("Sessions relayed at once by one webhook pod.", 1),
            maxSessionsPerUser=integer("Sessions one user may have open on one webhook pod.", 1),
            maxFrameBytes=integer("Largest WebSocket message, in bytes.", 1024),
            maxBufferedBytes=integer("Bytes held for a slow client, per session.", 65536),
            maxUnrecordedBytes=integer(
                "Bytes of a session not yet durable in the audit log, before it waits.", 65536
            ),
            maxSessionBytes=integer("The most one session may record; then it is ended.", 65536),
            drainTimeoutSeconds=integer(
                "Seconds a client may take the rest once the pod's side has ended.", 1
            ),
            apiService=obj(
                "The APIService's priorities.",
                groupPriorityMinimum=integer("groupPriorityMinimum.", 1, maximum=20000),
                versionPriority=integer("versionPriority.", 1, maximum=1000),
            ),
        ),
        "networkPolicy": obj(
            "NetworkPolicies for the pods.",
            enabled=boolean("Create them."),
            webhookIngressFrom=array("Sources allowed to reach the webhook.", ref(NP_PEER)),
            operatorIngressFrom=array("Sources allowed to reach the operator.", ref(NP_PEER)),
            egress=obj(
                "Egress restriction.",
                enabled=boolean("Restrict egress."),
                rules=array("Allowed egress.", ref(NP_EGRESS)),
            ),
        ),
        "userRoles": obj(
            "ClusterRoles for requesters, approvers and auditors.",
            create=boolean("Create them."),
            aggregateToDefaultRoles=boolean(
                "Aggregate the requester's and auditor's rules into Kubernetes' default roles."
            ),
        ),
        "defaultPolicy": DEFAULT_POLICY,
    },
}

DROPPED_KEYWORDS = {"description", "format"}


def _clean(node: Any) -> Any:
    """Kubernetes definitions without descriptions, formats and x-kubernetes-* extensions."""
    if isinstance(node, dict):
        return {
            key: _clean(value)
            for key, value in node.items()
            if key not in DROPPED_KEYWORDS and not key.startswith("x-kubernetes-")
        }
    if isinstance(node, list):
        return [_clean(value) for value in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"].rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def kubernetes_definitions(version: str = K8S_SCHEMA_VERSION) -> dict[str, Any]:
    """The closure of K8S_ROOTS in kubernetes-validate's strict definitions for `version`."""
    path = files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    )
    definitions = json.loads(path.read_text())["$defs"]
    wanted: dict[str, Any] = {}
    todo = list(K8S_ROOTS)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = _clean(definitions[name])
        todo.extend(_refs(wanted[name]) - wanted.keys())
    return dict(sorted(wanted.items()))


def build() -> dict[str, Any]:
    return SCHEMA | {"$defs": kubernetes_definitions()}


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
