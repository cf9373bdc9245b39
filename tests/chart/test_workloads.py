"""Pods, RBAC and the objects around them: restricted pod security everywhere, least-privilege
roles without wildcards, the command lines the contract names, audit storage, HA."""

from __future__ import annotations

import base64
from typing import Any

import helm_python as helm
import pytest
from chart import render, value_sets

from jitgate.cli.jitgate.main import build_parser

VALUE_SETS = value_sets.VALUE_SETS
# The user extras the chart lets the session gateway pass on by default: Kubernetes' own.
USER_EXTRAS = tuple(
    f"authentication.kubernetes.io/{key}"
    for key in ("credential-id", "node-name", "node-uid", "pod-name", "pod-uid")
)
NS = render.NAMESPACE
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        spec = obj["spec"]
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = (
            spec if obj["kind"] == "Pod" else spec["template"]["spec"]
        )
    return out


def workload(values: dict[str, Any], name: str) -> dict[str, Any]:
    return render.find(render.render_chart(values), "StatefulSet", name)


def pruner_enabled(values: dict[str, Any]) -> bool:
    return bool(values.get("audit", {}).get("postgres", {}).get("pruner", {}).get("enabled"))


def container_of(sts: dict[str, Any]) -> dict[str, Any]:
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return container


# --- pod security -------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_and_container_meets_the_restricted_standard(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    pods = pod_specs(render.render_chart(values))
    pruner = {"CronJob/jitgate-audit-pruner"} if pruner_enabled(values) else set()
    assert set(pods) == {"StatefulSet/jitgate-webhook", "StatefulSet/jitgate-operator"} | pruner
    for where, pod in pods.items():
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, where
        assert psc["runAsUser"] == 65532, where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for volume in pod["volumes"]:
            assert "hostPath" not in volume, where
        containers = pod["containers"] + pod.get("initContainers", [])
        assert containers
        for c in containers:
            what = f"{where} container {c['name']}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, what
            assert sc["runAsUser"] == 65532, what
            assert sc["readOnlyRootFilesystem"] is True, what
            assert sc["allowPrivilegeEscalation"] is False, what
            assert sc["capabilities"] == {"drop": ["ALL"]}, what
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, what
            assert sc.get("privileged", False) is False, what
            assert c["resources"]["requests"].keys() >= {"cpu", "memory"}, what
            assert c["resources"]["limits"].keys() >= {"cpu", "memory"}, what
            if where.startswith("CronJob/"):
                # A run to completion has no probes; a hung run is ended by its deadline.
                assert pod["activeDeadlineSeconds"] > 0, what
            else:
                assert "livenessProbe" in c and "readinessProbe" in c, what
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, what
            (tmp_volume,) = [v for v in pod["volumes"] if v["name"] == tmp[0]["name"]]
            assert "emptyDir" in tmp_volume, what


def test_webhook_probes_use_https_and_readiness_is_readyz() -> None:
    c = container_of(workload({}, render.WEBHOOK_NAME))
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]


def test_operator_liveness_is_kopfs_endpoint() -> None:
    c = container_of(workload({}, render.OPERATOR_NAME))
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["ports"][0] == {"name": "health", "containerPort": 8080, "protocol": "TCP"}


# --- command lines ------------------------------------------------------------------------


def test_webhook_command_line() -> None:
    c = container_of(workload({}, render.WEBHOOK_NAME))
    assert c["command"] == ["jitgate"]
    assert c["args"][:5] == [
        "webhook",
        "--host=0.0.0.0",
        "--port=8443",
        "--tls-cert=/tls/tls.crt",
        "--tls-key=/tls/tls.key",
    ]
    args = c["args"]
    assert "--audit=file:///var/lib/jitgate/audit" in args
    assert "--audit-key-file=/etc/jitgate/audit-key/hmac.key" in args
    assert "--writer-id=$(POD_NAME)" in args
    assert f"--operator-user=system:serviceaccount:{NS}:jitgate-operator" in args
    assert [a for a in args if a.startswith("--grant-collector=")] == [
        "--grant-collector=system:kube-controller-manager",
        "--grant-collector=system:serviceaccount:kube-system:generic-garbage-collector",
        "--grant-collector=system:serviceaccount:kube-system:namespace-controller",
    ]
    assert "--log-level=info" in args
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "JITGATE_AUDIT" not in env  # the file sink is named by --audit


def test_the_gateways_bounds_reach_the_webhook_command_line() -> None:
    """Every bound of the session gateway is a chart value, passed as a flag `jitgate webhook`
    takes."""
    bounds = {
        "maxSessions": 50,
        "maxSessionsPerUser": 2,
        "maxFrameBytes": 65536,
        "maxBufferedBytes": 1048576,
        "maxUnrecordedBytes": 524288,
        "maxSessionBytes": 67108864,
        "drainTimeoutSeconds": 5,
    }
    values = {"gateway": {**VALUE_SETS["session-gateway"]["gateway"], **bounds}}
    args = container_of(workload(values, render.WEBHOOK_NAME))["args"]
    parsed = vars(build_parser().parse_args(args))
    assert {key: parsed[f"gateway_{snake(key)}"] for key in bounds} == bounds


def test_the_webhook_trusts_the_api_servers_trace_ids_only_when_told() -> None:
    """`webhook.apiserverTraces` is the webhook's `--apiserver-traces`: off by default, since it
    is safe only with a tracing configuration on the kube-apiserver, which the chart cannot
    see."""
    default = container_of(workload({}, render.WEBHOOK_NAME))["args"]
    assert "--apiserver-traces" not in default
    assert vars(build_parser().parse_args(default))["apiserver_traces"] is False
    values = {"webhook": {"apiserverTraces": True}}
    args = container_of(workload(values, render.WEBHOOK_NAME))["args"]
    assert args.count("--apiserver-traces") == 1
    assert vars(build_parser().parse_args(args))["apiserver_traces"] is True


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def test_operator_command_line() -> None:
    c = container_of(workload({}, render.OPERATOR_NAME))
    args = c["args"]
    assert args[:2] == ["operator", "--all-namespaces"]
    for flag in (
        "--audit=file:///var/lib/jitgate/audit",
        "--audit-key-file=/etc/jitgate/audit-key/hmac.key",
        "--writer-id=$(POD_NAME)",
        "--peering=jitgate",
        "--priority=$(POD_INDEX)",
        "--retention=168h",
        "--webhook-configuration=jitgate",
        "--metrics-port=9090",
        "--log-level=info",
    ):
        assert flag in args
    assert "--standalone" not in args
    assert not [a for a in args if a.startswith("--notify")]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in c["ports"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert "JITGATE_NOTIFY_URL" not in env


def test_both_components_mount_the_hmac_key_secret() -> None:
    objects = render.render_chart({})
    secret = render.find(objects, "Secret", render.AUDIT_KEY_SECRET_NAME)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["hmac.key"]) >= 64
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        pod = render.find(objects, "StatefulSet", name)["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "audit-key"]
        assert volume["secret"]["secretName"] == render.AUDIT_KEY_SECRET_NAME
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "audit-key"]
        assert mount == {
            "name": "audit-key",
            "mountPath": "/etc/jitgate/audit-key",
            "readOnly": True,
        }


def test_existing_hmac_secret_is_used_and_none_is_generated() -> None:
    objects = render.render_chart(VALUE_SETS["locked-down"])
    assert not [o for o in objects if o["metadata"]["name"] == render.AUDIT_KEY_SECRET_NAME]
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        sts = render.find(objects, "StatefulSet", name)
        (volume,) = [
            v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "audit-key"
        ]
        assert volume["secret"]["secretName"] == "corp-audit-hmac"
        assert "--audit-key-file=/etc/jitgate/audit-key/key" in container_of(sts)["args"]


def test_hmac_key_and_tls_secret_templates_keep_existing_data_via_lookup() -> None:
    source = (render.CHART_DIR / "templates" / "audit-key-secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in source


# --- audit storage ------------------------------------------------------------------------


def test_file_sink_gives_every_replica_its_own_retained_volume() -> None:
    objects = render.render_chart(VALUE_SETS["locked-down"])
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        sts = render.find(objects, "StatefulSet", name)
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "audit"
        assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
        assert claim["spec"]["storageClassName"] == "fast-ssd"
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }
        (mount,) = [m for m in container_of(sts)["volumeMounts"] if m["name"] == "audit"]
        assert mount["mountPath"] == "/var/lib/jitgate/audit"
        assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 65532


def test_postgres_sink_reads_the_url_from_the_secret_and_has_no_volume() -> None:
    objects = render.render_chart(VALUE_SETS["postgres-audit"])
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        sts = render.find(objects, "StatefulSet", name)
        assert "volumeClaimTemplates" not in sts["spec"]
        c = container_of(sts)
        assert not [a for a in c["args"] if a.startswith("--audit=")]
        assert not [m for m in c["volumeMounts"] if m["name"] == "audit"]
        env = {e["name"]: e for e in c["env"]}
        assert env["JITGATE_AUDIT"]["valueFrom"]["secretKeyRef"] == {
            "name": "jitgate-audit-db",
            "key": "url",
        }
    operator = container_of(render.find(objects, "StatefulSet", render.OPERATOR_NAME))
    env = {e["name"]: e for e in operator["env"]}
    assert env["JITGATE_NOTIFY_URL"]["valueFrom"]["secretKeyRef"]["name"] == "jitgate-notify"
    assert "--notify-format=generic" in operator["args"]


# --- availability -------------------------------------------------------------------------


def test_default_is_highly_available() -> None:
    objects = render.render_chart({})
    webhook = render.find(objects, "StatefulSet", render.WEBHOOK_NAME)
    operator = render.find(objects, "StatefulSet", render.OPERATOR_NAME)
    assert webhook["spec"]["replicas"] == 2
    assert operator["spec"]["replicas"] == 2
    for sts in (webhook, operator):
        pod = sts["spec"]["template"]["spec"]
        anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        assert sts["spec"]["podManagementPolicy"] == "Parallel"
    pdbs = {p["metadata"]["name"]: p for p in render.by_kind(objects, "PodDisruptionBudget")}
    assert set(pdbs) == {"jitgate-webhook", "jitgate-operator"}
    selector = pdbs["jitgate-webhook"]["spec"]["selector"]["matchLabels"]
    assert selector == webhook["spec"]["selector"]["matchLabels"]
    assert pdbs["jitgate-webhook"]["spec"]["minAvailable"] == 1
    # The Service reaches the webhook pods only.
    service = render.find(objects, "Service", render.WEBHOOK_NAME)
    assert service["spec"]["selector"] == webhook["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 443
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    template_labels = webhook["spec"]["template"]["metadata"]["labels"]
    assert template_labels.items() >= service["spec"]["selector"].items()


def test_peering_objects_and_rbac() -> None:
    objects = render.render_chart({})
    crds = {c["metadata"]["name"] for c in render.by_kind(objects, "CustomResourceDefinition")}
    assert crds == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    peering = render.find(objects, "ClusterKopfPeering", "jitgate")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert render.is_hook(peering)
    assert (
        not render.find(objects, "CustomResourceDefinition", "kopfpeerings.kopf.dev")["metadata"]
        .get("annotations", {})
        .get("helm.sh/hook")
    )


def test_peering_object_lookup_is_guarded_by_the_served_apis() -> None:
    """`lookup` of a kind whose API group the cluster does not serve fails the whole install."""
    source = (render.CHART_DIR / "templates" / "kopf-peering.yaml").read_text()
    guard = source.index('.Capabilities.APIVersions.Has "kopf.dev/v1/ClusterKopfPeering"')
    assert guard < source.index('lookup "kopf.dev/v1" "ClusterKopfPeering"')


def test_ha_off_has_no_peering_and_no_disruption_budgets() -> None:
    objects = render.render_chart(VALUE_SETS["ha-off"])
    assert not render.by_kind(objects, "PodDisruptionBudget")
    assert not render.by_kind(objects, "ClusterKopfPeering")
    assert not render.by_kind(objects, "CustomResourceDefinition")
    operator = container_of(render.find(objects, "StatefulSet", render.OPERATOR_NAME))
    assert not [a for a in operator["args"] if a.startswith(("--peering", "--priority"))]
    assert "--standalone" in operator["args"]
    role = render.find(objects, "ClusterRole", render.OPERATOR_NAME)
    assert not [r for r in role["rules"] if "kopf.dev" in r["apiGroups"]]
    assert not render.by_kind(objects, "Role")


def test_peering_crds_can_be_left_to_another_kopf_operator() -> None:
    objects = render.render_chart({"operator": {"peering": {"createCRDs": False}}})
    assert not render.by_kind(objects, "CustomResourceDefinition")
    assert render.by_kind(objects, "ClusterKopfPeering")


# --- RBAC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_no_wildcards_in_any_role(value_set: str) -> None:
    objects = render.render_chart(VALUE_SETS[value_set])
    roles = render.by_kind(objects, "ClusterRole") + render.by_kind(objects, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups", "resourceNames"):
                for item in rule.get(field, []):
                    assert "*" not in item, (role["metadata"]["name"], field, rule)
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind"} & set(rule["verbs"])
            if "impersonate" in rule["verbs"]:
                if role["metadata"]["name"].endswith("-slack-impersonator"):
                    # The Slack app acts as the mapped users and groups, by name only.
                    assert value_set == "slack"
                    assert rule["verbs"] == ["impersonate"] and rule["resourceNames"], rule
                    continue
                # Only the session gateway opens streams as their users: their uid, their
                # extras of the keys gateway.userExtras lists, and its own marker
                # (docs/threat-model.md, 4.6).
                assert role["metadata"]["name"] == "jitgate-webhook-sessions", role
                assert value_set == "session-gateway"
                assert rule["verbs"] == ["impersonate"]
                assert set(rule["resources"]) <= {
                    "users",
                    "groups",
                    "uids",
                    "userextras/jitgate.dev/session",
                    *(f"userextras/{key}" for key in USER_EXTRAS),
                }, rule


def test_the_gateway_may_impersonate_the_whole_identity_of_its_users() -> None:
    """uid and the user extras listed (Kubernetes' own by default, more when an authenticator
    adds them), each by its key: RBAC has no wildcard for one resource's subresources."""
    values = VALUE_SETS["session-gateway"]
    extras = {"gateway": {**values["gateway"], "userExtras": ["acme.example/team"]}}
    for chosen, keys in ((values, USER_EXTRAS), (extras, ("acme.example/team",))):
        [role] = [
            r
            for r in render.by_kind(render.render_chart(chosen), "ClusterRole")
            if r["metadata"]["name"] == "jitgate-webhook-sessions"
        ]
        assert ("authentication.k8s.io", "uids", "impersonate", "") in permissions(role)
        allowed = {r for g, r, v, _ in permissions(role) if r.startswith("userextras/")}
        assert allowed == {"userextras/jitgate.dev/session", *(f"userextras/{k}" for k in keys)}


def permissions(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """{(apiGroup, resource, verb, resourceName or "")}"""
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames", [""])
    }


def expand(group: str, resources: list[str], verbs: list[str], name: str = "") -> set[Any]:
    return {(group, r, v, name) for r in resources for v in verbs}


def test_webhook_reads_only_what_it_decides_with() -> None:
    objects = render.render_chart({})
    role = render.find(objects, "ClusterRole", render.WEBHOOK_NAME)
    read = ["get", "list", "watch"]
    assert permissions(role) == (
        expand("jitgate.dev", ["grants", "accesspolicies", "accessrequests"], read)
        # Its one write: a limited grant's use count.
        | expand("jitgate.dev", ["grants/status"], ["update"])
        | expand("", ["namespaces"], read)
        # An autoscaler's target's replicas, and the objects of a namespace being deleted
        # (names only: the webhook lists metadata) for each routed delete resource.
        | expand("", ["replicationcontrollers/scale"], ["get"])
        | expand("apps", ["deployments/scale", "statefulsets/scale", "replicasets/scale"], ["get"])
        | expand(
            "",
            [
                "pods",
                "replicationcontrollers",
                "services",
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
            ],
            ["list"],
        )
        | expand("apps", ["deployments", "statefulsets", "replicasets", "daemonsets"], ["list"])
        | expand("batch", ["jobs", "cronjobs"], ["list"])
    )
    binding = render.find(objects, "ClusterRoleBinding", render.WEBHOOK_NAME)
    assert binding["roleRef"]["name"] == render.WEBHOOK_NAME
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": render.WEBHOOK_NAME, "namespace": NS}
    ]


def test_operator_permissions_are_exactly_these() -> None:
    objects = render.render_chart({})
    role = render.find(objects, "ClusterRole", render.OPERATOR_NAME)
    read = ["get", "list", "watch"]
    expected = (
        expand("jitgate.dev", ["accessrequests"], [*read, "patch", "delete"])
        | expand(
            "jitgate.dev",
            ["accessrequests/status", "grants/status", "accesspolicies/status"],
            ["get", "patch"],
        )
        | expand("jitgate.dev", ["grants"], ["create", "delete", *read, "patch"])
        | expand("jitgate.dev", ["accesspolicies"], read)
        # Each policy's Enforced condition is checked against the webhook configuration.
        | expand("admissionregistration.k8s.io", ["validatingwebhookconfigurations"], read)
        | expand("", ["namespaces"], read)
        | expand("", ["events"], ["create", "patch"])
        | expand("apiextensions.k8s.io", ["customresourcedefinitions"], read)
        | expand("kopf.dev", ["clusterkopfpeerings"], read)
        | expand("kopf.dev", ["clusterkopfpeerings"], ["patch"], "jitgate")
    )
    assert permissions(role) == expected
    peering = render.find(objects, "Role", "jitgate-operator-peering")
    assert peering["metadata"]["namespace"] == NS
    assert permissions(peering) == expand("kopf.dev", ["kopfpeerings"], read) | expand(
        "kopf.dev", ["kopfpeerings"], ["patch"], "jitgate"
    )
    for kind, name in (
        ("ClusterRoleBinding", render.OPERATOR_NAME),
        ("RoleBinding", "jitgate-operator-peering"),
    ):
        binding = render.find(objects, kind, name)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": render.OPERATOR_NAME, "namespace": NS}
        ]


def test_pods_run_as_their_own_service_accounts() -> None:
    objects = render.render_chart({})
    accounts = {a["metadata"]["name"] for a in render.by_kind(objects, "ServiceAccount")}
    assert accounts == {render.WEBHOOK_NAME, render.OPERATOR_NAME}
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        pod = render.find(objects, "StatefulSet", name)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name


def test_custom_service_account_names_flow_into_flags_bindings_and_exemptions() -> None:
    values = {
        "webhook": {"serviceAccount": {"name": "gate"}},
        "operator": {"serviceAccount": {"name": "op"}},
    }
    objects = render.render_chart(values)
    binding = render.find(objects, "ClusterRoleBinding", render.OPERATOR_NAME)
    assert binding["subjects"][0]["name"] == "op"
    args = container_of(render.find(objects, "StatefulSet", render.WEBHOOK_NAME))["args"]
    assert f"--operator-user=system:serviceaccount:{NS}:op" in args
    assert f"--exempt-user=system:serviceaccount:{NS}:gate" in args


# --- the rest -----------------------------------------------------------------------------


def test_network_policies_when_enabled() -> None:
    objects = render.render_chart(VALUE_SETS["locked-down"])
    policies = {p["metadata"]["name"]: p for p in render.by_kind(objects, "NetworkPolicy")}
    assert set(policies) == {render.WEBHOOK_NAME, render.OPERATOR_NAME}
    webhook = policies[render.WEBHOOK_NAME]["spec"]
    assert webhook["policyTypes"] == ["Ingress", "Egress"]
    pods = {"app.kubernetes.io/name": "jitgate", "app.kubernetes.io/instance": "jitgate"}
    webhook_pods = {
        "podSelector": {"matchLabels": {**pods, "app.kubernetes.io/component": "webhook"}}
    }
    operator_pods = {
        "podSelector": {"matchLabels": {**pods, "app.kubernetes.io/component": "operator"}}
    }
    assert webhook["ingress"] == [
        {
            "ports": [{"port": 8443, "protocol": "TCP"}],
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        },
        # The value set has peer witnessing on: the replicas and the operator submit.
        {"ports": [{"port": 8443, "protocol": "TCP"}], "from": [webhook_pods, operator_pods]},
    ]
    assert {p["port"] for rule in webhook["egress"] for p in rule["ports"]} == {
        53,
        443,
        6443,
        8443,
    }
    for policy in policies.values():
        assert {"ports": [{"port": 8443, "protocol": "TCP"}], "to": [webhook_pods]} in policy[
            "spec"
        ]["egress"]


def test_network_policies_are_on_by_default_for_ingress_only() -> None:
    policies = render.by_kind(render.render_chart({}), "NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {
        render.WEBHOOK_NAME,
        render.OPERATOR_NAME,
    }
    assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in policies)
    assert not render.by_kind(
        render.render_chart({"networkPolicy": {"enabled": False}}), "NetworkPolicy"
    )


# --- webhook client authentication --------------------------------------------------------

CLIENT_SECRET = f"{render.WEBHOOK_NAME}-client"


def _client_ca_volume(objects: list[dict[str, Any]]) -> tuple[list[str], list[Any], list[Any]]:
    sts = render.find(objects, "StatefulSet", render.WEBHOOK_NAME)
    pod = sts["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if v["name"] == "client-ca"]
    mounts = [m for m in container_of(sts)["volumeMounts"] if m["name"] == "client-ca"]
    return container_of(sts)["args"], volumes, mounts


def test_without_client_auth_the_webhook_hears_anyone_and_the_notes_say_so() -> None:
    objects = render.render_chart({})
    args, volumes, mounts = _client_ca_volume(objects)
    assert not [a for a in args if a.startswith("--client-ca")]
    assert volumes == mounts == []
    assert not [o for o in objects if o["metadata"]["name"] == CLIENT_SECRET]
    assert '"caller": "unverified"' in render.notes({})


def test_client_auth_generates_a_client_ca_and_the_api_servers_certificate() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    objects = render.render_chart({"webhook": {"clientAuth": {"enabled": True}}})
    secret = render.find(objects, "Secret", CLIENT_SECRET)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pem = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    ca = x509.load_pem_x509_certificate(pem["ca.crt"])
    client = x509.load_pem_x509_certificate(pem["tls.crt"])
    client.verify_directly_issued_by(ca)
    usages = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    # ECDSA P-256, as the serving certificate: the API server signs each new connection's
    # handshake with this key.
    key = serialization.load_pem_private_key(pem["tls.key"], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key().public_numbers() == client.public_key().public_numbers()  # type: ignore[union-attr]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)

    args, volumes, mounts = _client_ca_volume(objects)
    assert "--client-ca=/client-ca/ca.crt" in args
    # The pods get the CA only, never the API server's private key.
    assert volumes == [
        {
            "name": "client-ca",
            "secret": {
                "secretName": CLIENT_SECRET,
                "defaultMode": 0o440,
                "items": [{"key": "ca.crt", "path": "ca.crt"}],
            },
        }
    ]
    assert mounts == [{"name": "client-ca", "mountPath": "/client-ca", "readOnly": True}]
    source = (render.CHART_DIR / "templates" / "webhook-client-auth.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in source


def test_client_auth_with_an_existing_ca_mounts_it_and_generates_nothing() -> None:
    values = {"webhook": {"clientAuth": {"enabled": True, "mode": "existingSecret"}}}
    with pytest.raises(helm.HelmError, match="existingSecret"):
        render.render_chart(values)
    values["webhook"]["clientAuth"]["existingSecret"] = "control-plane-clients"
    objects = render.render_chart(values)
    assert not [o for o in objects if o["metadata"]["name"] == CLIENT_SECRET]
    _, (volume,), _ = _client_ca_volume(objects)
    assert volume["secret"]["secretName"] == "control-plane-clients"


def test_default_access_policy_matches_the_webhook_selector() -> None:
    objects = render.render_chart({})
    policy = render.find(objects, "AccessPolicy", "default")
    assert policy["apiVersion"] == "jitgate.dev/v1alpha1"
    spec = policy["spec"]
    assert spec["namespaces"] == {"selector": {"matchLabels": {"jitgate.dev/protected": "true"}}}
    assert spec["actions"] == ["exec", "attach", "portforward", "delete", "scale"]
    assert spec["approvers"] == {"groups": ["jitgate-approvers"]}
    assert "requesters" not in spec and "breakGlass" not in spec
    vwc = render.find(objects, "ValidatingWebhookConfiguration", "jitgate")
    hook = next(w for w in vwc["webhooks"] if w["name"] == "connect.actions.jitgate.dev")
    assert hook["namespaceSelector"]["matchLabels"] == spec["namespaces"]["selector"]["matchLabels"]
    assert not render.by_kind(render.render_chart(VALUE_SETS["no-default-policy"]), "AccessPolicy")


def test_default_access_policy_carries_every_value() -> None:
    spec = render.find(render.render_chart(VALUE_SETS["locked-down"]), "AccessPolicy", "default")[
        "spec"
    ]
    assert spec["requiredApprovals"] == 2
    assert spec["approvers"] == {"users": ["alice", "bob"]}
    assert spec["breakGlass"] == {"groups": ["sre-oncall"], "maxDuration": "15m"}
    assert spec["exemptions"] == {
        "users": ["system:serviceaccount:argocd:argocd-application-controller"]
    }
    assert spec["maxDuration"] == "1h" and spec["pendingTimeout"] == "1h"


# --- signed checkpoints -------------------------------------------------------------------


def test_the_checkpoint_key_is_mounted_apart_from_the_audit_volume() -> None:
    objects = render.render_chart(
        {"audit": {"checkpoints": {"existingSecret": "jitgate-checkpoint-key"}}}
    )
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        sts = render.find(objects, "StatefulSet", name)
        pod = sts["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "checkpoint-key"]
        assert volume["secret"] == {
            "secretName": "jitgate-checkpoint-key",
            "defaultMode": 0o440,
            "items": [{"key": "checkpoint.key", "path": "checkpoint.key"}],
        }
        (mount,) = [m for m in container_of(sts)["volumeMounts"] if m["name"] == "checkpoint-key"]
        assert mount["mountPath"] == "/etc/jitgate/checkpoint-key"
        assert (
            "--checkpoint-key=/etc/jitgate/checkpoint-key/checkpoint.key"
            in (container_of(sts)["args"])
        )
    default = container_of(workload({}, render.WEBHOOK_NAME))
    assert not [a for a in default["args"] if a.startswith(("--checkpoint-key", "--witness"))]


def test_webhook_replicas_witness_one_another_and_the_operator() -> None:
    checkpoints = {
        "existingSecret": "jitgate-checkpoint-key",
        "peerWitnesses": {"existingSecret": "jitgate-peer-witness"},
    }
    objects = render.render_chart(
        {"audit": {"checkpoints": checkpoints}, "webhook": {"replicas": 3}}
    )
    peers = [f"https://{render.WEBHOOK_NAME}-{i}.{NS}.svc:8443/witness" for i in range(3)]
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        sts = render.find(objects, "StatefulSet", name)
        args = container_of(sts)["args"]
        # One list for every writer: each skips the URL naming its own pod.
        assert [a for a in args if a.startswith("--witness=")] == [f"--witness={u}" for u in peers]
        assert "--witness-ca=/etc/jitgate/webhook-ca/ca.crt" in args
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        assert volumes["webhook-ca"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    webhook_args = container_of(render.find(objects, "StatefulSet", render.WEBHOOK_NAME))["args"]
    assert "--witness-key=/etc/jitgate/witness-key/witness.key" in webhook_args
    # What a replica cosigned stays on its own audit volume, beside (not in) the writers' logs.
    assert "--witness-state=/var/lib/jitgate/audit/.witness" in webhook_args
    for ordinal in range(3):
        service = render.find(objects, "Service", f"{render.WEBHOOK_NAME}-{ordinal}")
        assert service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == (
            f"{render.WEBHOOK_NAME}-{ordinal}"
        )
        assert service["spec"]["publishNotReadyAddresses"] is True
    with pytest.raises(helm.HelmError, match=r"set audit\.checkpoints\.existingSecret too"):
        render.render_chart({"audit": {"checkpoints": {"peerWitnesses": {"existingSecret": "w"}}}})
    default = container_of(workload({}, render.WEBHOOK_NAME))["args"]
    assert not [a for a in default if a.startswith("--witness")]


def test_writers_submit_their_checkpoints_to_the_listed_witnesses() -> None:
    witnesses = ["https://witness.example.org", "http://witness.audit.svc:8444"]
    checkpoints = {"existingSecret": "jitgate-checkpoint-key", "witnesses": witnesses}
    objects = render.render_chart({"audit": {"checkpoints": checkpoints}})
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        args = container_of(render.find(objects, "StatefulSet", name))["args"]
        assert [a for a in args if a.startswith("--witness")] == [
            f"--witness={url}" for url in witnesses
        ]
    with pytest.raises(helm.HelmError, match=r"set audit\.checkpoints\.existingSecret too"):
        render.render_chart({"audit": {"checkpoints": {"witnesses": witnesses}}})
    with pytest.raises(helm.HelmError):
        render.render_chart({"audit": {"checkpoints": {**checkpoints, "witnesses": ["ftp://x"]}}})
    on_postgres = render.render_chart(
        {
            "audit": {
                "sink": "postgres",
                "postgres": {"existingSecret": "pg"},
                "checkpoints": {"existingSecret": "jitgate-checkpoint-key"},
            }
        }
    )
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        args = container_of(render.find(on_postgres, "StatefulSet", name))["args"]
        assert any(a.startswith("--checkpoint-key=") for a in args)


# --- audit retention ------------------------------------------------------------------------


def test_file_writers_prune_their_own_segments_after_the_retention() -> None:
    objects = render.render_chart({"audit": {"file": {"retention": "400d"}}})
    for name in (render.WEBHOOK_NAME, render.OPERATOR_NAME):
        args = container_of(render.find(objects, "StatefulSet", name))["args"]
        assert "--audit=file:///var/lib/jitgate/audit?retention=400d" in args
    default = container_of(workload({}, render.WEBHOOK_NAME))["args"]
    assert "--audit=file:///var/lib/jitgate/audit" in default
    with pytest.raises(helm.HelmError, match="retention"):
        render.render_chart({"audit": {"file": {"retention": "a year"}}})


def test_postgres_retention_runs_as_the_pruning_role_on_a_schedule() -> None:
    values = {
        "audit": {
            "sink": "postgres",
            "postgres": {
                "existingSecret": "audit-writer-db",
                "pruner": {
                    "enabled": True,
                    "existingSecret": "audit-pruner-db",
                    "schedule": "5 * * * *",
                },
            },
            "checkpoints": {"existingSecret": "jitgate-checkpoint-key"},
        },
        "networkPolicy": {"egress": {"enabled": True}},
    }
    objects = render.render_chart(values)
    cronjob = render.find(objects, "CronJob", "jitgate-audit-pruner")
    assert cronjob["spec"]["schedule"] == "5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["jitgate"]
    assert container["args"] == [
        "audit",
        "prune",
        "--writer=jitgate-audit-pruner",
        "--key-file=/etc/jitgate/audit-key/hmac.key",
        "--checkpoint-key=/etc/jitgate/checkpoint-key/checkpoint.key",
    ]
    # The pruning role's URL, never the writers': only it may drop partitions.
    (audit_env,) = [e for e in container["env"] if e["name"] == "JITGATE_AUDIT"]
    assert audit_env["valueFrom"]["secretKeyRef"] == {"name": "audit-pruner-db", "key": "url"}
    policy = render.find(objects, "NetworkPolicy", "jitgate-audit-pruner")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "audit-pruner"
    )
    assert "ingress" not in policy["spec"] and "Egress" in policy["spec"]["policyTypes"]
    # No Job is scheduled unless asked, and never for file logs (their writers prune them).
    assert not render.by_kind(render.render_chart({}), "CronJob")
    with pytest.raises(helm.HelmError, match=r"pruner\.existingSecret is required"):
        render.render_chart(
            {
                "audit": {
                    "sink": "postgres",
                    "postgres": {"existingSecret": "db", "pruner": {"enabled": True}},
                }
            }
        )
    with pytest.raises(helm.HelmError, match="file logs are pruned by their writers"):
        render.render_chart({"audit": {"postgres": {"pruner": {"enabled": True}}}})
