"""Value sets the chart tests render: the defaults and the main alternatives."""

from __future__ import annotations

from typing import Any

# The value sets every structural test renders: the defaults and the main alternatives.
SLACK: dict[str, Any] = {
    "enabled": True,
    "channel": "C0ACCESS",
    "existingSecret": "jitgate-slack",
    "tls": {"existingSecret": "jitgate-slack-tls"},
    "users": {
        "U0BOB": {"user": "bob@example.com", "groups": ["sre"]},
        "U0CAROL": {"user": "carol@example.com", "groups": ["sre", "dba"]},
    },
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"tls": {"mode": "cert-manager"}},
    "cert-manager-cluster-issuer": {
        "tls": {
            "mode": "cert-manager",
            "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        }
    },
    "postgres-audit": {
        "audit": {
            "sink": "postgres",
            "postgres": {
                "existingSecret": "jitgate-audit-db",
                "pruner": {"enabled": True, "existingSecret": "jitgate-audit-pruner-db"},
            },
        },
        "operator": {"notify": {"existingSecret": "jitgate-notify", "format": "generic"}},
    },
    "ha-off": {
        "webhook": {"replicas": 1},
        "operator": {"replicas": 1, "peering": {"enabled": False}},
    },
    "custom-namespace-selector": {
        "webhook": {
            "protectedNamespaceSelector": {
                # null removes the default matchLabels (Helm merges maps with the defaults).
                "matchLabels": None,
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}],
            },
            "excludedNamespaces": ["argocd", "kube-system"],
        },
        "defaultPolicy": {
            "namespaces": {
                "names": ["payments"],
                "selector": {
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]
                },
            }
        },
    },
    "locked-down": {
        "image": {"digest": "sha256:" + "ab" * 32},
        "imagePullSecrets": [{"name": "regcred"}],
        "commonLabels": {"team": "platform"},
        "audit": {
            "hmac": {"existingSecret": "corp-audit-hmac", "key": "key"},
            "file": {"storageClassName": "fast-ssd", "size": "20Gi", "retention": "400d"},
            "checkpoints": {
                "existingSecret": "corp-checkpoint-key",
                "peerWitnesses": {"existingSecret": "corp-peer-witness"},
            },
        },
        "webhook": {
            "replicas": 3,
            "failurePolicy": "Fail",
            "timeoutSeconds": 3,
            "clientAuth": {"enabled": True},
            "matchConditions": {"enabled": False},
            "podDisruptionBudget": {"minAvailable": "50%"},
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra"}],
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/component": "webhook"}
                            },
                        }
                    ]
                }
            },
            "extraArgs": ["--log-level=debug"],
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "serviceAccount": {"annotations": {"example.com/role": "jitgate"}},
            "podAnnotations": {"prometheus.io/scrape": "true"},
        },
        "operator": {
            "replicas": 3,
            "retention": "720h",
            "priorityClassName": "high",
            "metricsPort": 0,
            "logLevel": "debug",
        },
        "networkPolicy": {
            "enabled": True,
            "webhookIngressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
            "egress": {"enabled": True},
        },
        "defaultPolicy": {
            "requiredApprovals": 2,
            "approvers": {"users": ["alice", "bob"], "groups": []},
            "breakGlass": {"groups": ["sre-oncall"], "maxDuration": "15m"},
            "exemptions": {"users": ["system:serviceaccount:argocd:argocd-application-controller"]},
        },
    },
    "no-default-policy": {"defaultPolicy": {"enabled": False}},
    "session-gateway": {
        "gateway": {
            "enabled": True,
            "requestHeader": {
                "clientCA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                "allowedNames": ["front-proxy-client", "aggregator"],
            },
            "maxSessionsPerUser": 2,
        },
        "networkPolicy": {"enabled": True},
    },
    # Approve from Slack; the second user shares the first's group (the RBAC names it once).
    "slack": {"operator": {"slack": SLACK}},
}

KUBERNETES_VERSIONS = ("1.29", "1.33", "1.37")
