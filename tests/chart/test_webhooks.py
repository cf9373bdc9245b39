"""The admission webhook configurations: the right operations on the right resources, failing
closed, never in kube-system or jitgate's own namespace, skipping exempt users (but never the
operator on jitgate's own kinds), and a caBundle that really signs the serving certificate."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from chart import render, value_sets
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from jitgate.webhook.tls import ReloadingTLS

VALUE_SETS = value_sets.VALUE_SETS
NS = render.NAMESPACE
SVC = render.WEBHOOK_NAME
OPERATOR_USER = f"system:serviceaccount:{NS}:{render.OPERATOR_NAME}"
WEBHOOK_USER = f"system:serviceaccount:{NS}:{render.WEBHOOK_NAME}"

PROTECTED = (
    "connect.actions.jitgate.dev",
    "delete.actions.jitgate.dev",
    "scale.actions.jitgate.dev",
    "edits.actions.jitgate.dev",
    "autoscalers.actions.jitgate.dev",
    "namespaces.actions.jitgate.dev",
    "protection.actions.jitgate.dev",
)
# Routed in protected namespaces only (a namespace's label change is routed everywhere).
IN_PROTECTED_NAMESPACES = tuple(n for n in PROTECTED if n != "protection.actions.jitgate.dev")
DEFAULT_DELETE_RESOURCES = {
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("", "services"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
OWN = ("accessrequests.jitgate.dev", "grants.jitgate.dev")


def configurations(values: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    objects = render.render_chart(values or {}, **kwargs)
    name = (
        render.WEBHOOK_CONFIGURATION_NAME if "name" not in kwargs else f"{kwargs['name']}-jitgate"
    )
    return {
        "validating": render.find(objects, "ValidatingWebhookConfiguration", name),
        "mutating": render.find(objects, "MutatingWebhookConfiguration", name),
        "objects": objects,
    }


def webhooks(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """{"validating/<name>" | "mutating/<name>": webhook}"""
    c = configurations(values)
    out = {f"validating/{w['name']}": w for w in c["validating"]["webhooks"]}
    out |= {f"mutating/{w['name']}": w for w in c["mutating"]["webhooks"]}
    return out


def rule_set(webhook: dict[str, Any]) -> set[tuple[str, str, str]]:
    """{(operation, group, resource[/subresource])}"""
    return {
        (op, group, resource)
        for rule in webhook["rules"]
        for op in rule["operations"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_configurations_hold_exactly_these_webhooks() -> None:
    assert set(webhooks()) == {f"validating/{n}" for n in PROTECTED + OWN} | {
        "mutating/accessrequests.jitgate.dev"
    }


def test_exec_attach_portforward_are_connect_on_pod_subresources() -> None:
    hook = webhooks()["validating/connect.actions.jitgate.dev"]
    assert rule_set(hook) == {
        ("CONNECT", "", "pods/exec"),
        ("CONNECT", "", "pods/attach"),
        ("CONNECT", "", "pods/portforward"),
        # An ephemeral container (kubectl debug) runs any command in the pod: it is an exec.
        ("UPDATE", "", "pods/ephemeralcontainers"),
    }
    assert all(rule["apiVersions"] == ["v1"] for rule in hook["rules"])


def test_delete_covers_the_protected_resources_from_values() -> None:
    hook = webhooks()["validating/delete.actions.jitgate.dev"]
    assert rule_set(hook) == {("DELETE", group, res) for group, res in DEFAULT_DELETE_RESOURCES} | {
        # An eviction deletes the pod without a DELETE review: it is decided as a delete.
        ("CREATE", "", "pods/eviction"),
    }
    custom = webhooks(
        {
            "webhook": {
                "deleteResources": [
                    {"apiGroup": "", "resources": ["pods", "persistentvolumeclaims"]},
                    {"apiGroup": "batch", "resources": ["jobs", "cronjobs"]},
                ]
            }
        }
    )["validating/delete.actions.jitgate.dev"]
    assert rule_set(custom) == {
        ("DELETE", "", "pods"),
        ("CREATE", "", "pods/eviction"),
        ("DELETE", "", "persistentvolumeclaims"),
        ("DELETE", "batch", "jobs"),
        ("DELETE", "batch", "cronjobs"),
    }
    no_pods = webhooks(
        {"webhook": {"deleteResources": [{"apiGroup": "apps", "resources": ["deployments"]}]}}
    )["validating/delete.actions.jitgate.dev"]
    assert rule_set(no_pods) == {("DELETE", "apps", "deployments")}


def test_scale_is_update_on_scale_subresources_and_on_the_workloads() -> None:
    hook = webhooks()["validating/scale.actions.jitgate.dev"]
    assert rule_set(hook) == {
        ("UPDATE", group, f"{kind}{sub}")
        for group, kind in (
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("apps", "replicasets"),
            ("", "replicationcontrollers"),
        )
        for sub in ("", "/scale")
    }
    # PATCH arrives as UPDATE; updates that leave spec.replicas alone are skipped up front.
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert "object.spec.replicas != oldObject.spec.replicas" in conditions["replicas-changed"]
    # An empty subResource is omitted from the request, so it must be guarded by has().
    assert (
        "(has(request.subResource) && request.subResource == 'scale')"
        in conditions["replicas-changed"]
    )
    # A StatefulSet's ordinals move every replica: the controller deletes those outside them.
    assert "object.spec.ordinals" in conditions["replicas-changed"]
    # A Scale omits 0 replicas: one that keeps the count (0 included) is not routed.
    assert (
        "(has(object.spec) && has(object.spec.replicas) ? object.spec.replicas : 0) !="
        in conditions["replicas-changed"]
    )


def test_edits_that_end_a_protected_object_are_updates_of_every_deleted_resource() -> None:
    hook = webhooks()["validating/edits.actions.jitgate.dev"]
    assert rule_set(hook) == {("UPDATE", group, res) for group, res in DEFAULT_DELETE_RESOURCES} | {
        ("UPDATE", "", "pods/resize")
    }
    custom = webhooks(
        {"webhook": {"deleteResources": [{"apiGroup": "batch", "resources": ["jobs"]}]}}
    )
    assert rule_set(custom["validating/edits.actions.jitgate.dev"]) == {("UPDATE", "batch", "jobs")}
    # Only owner references, a live pod's deadline, images and restarting resizes, a Job's
    # pod-ending fields and a CronJob's history limits cut reach the webhook: status is a
    # subresource (never routed), label and template edits are skipped by CEL
    # (tests/apiserver/test_chart_routing.py runs it).
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    changed = conditions["outcome-fields-changed"]
    for field in (
        "metadata.ownerReferences",
        "spec.activeDeadlineSeconds",
        "spec.containers",
        "spec.initContainers",
        "spec.parallelism",
        "spec.suspend",
        "spec.backoffLimit",
        "spec.ttlSecondsAfterFinished",
        "spec.successfulJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
    ):
        assert f"object.{field}" in changed and f"oldObject.{field}" in changed
    assert "request.resource.resource == 'pods'" in changed
    assert "request.subResource == 'resize'" in changed
    assert "request.resource.resource == 'jobs'" in changed
    assert "request.resource.resource == 'cronjobs'" in changed


def test_autoscalers_are_routed_when_created_or_changed() -> None:
    hook = webhooks()["validating/autoscalers.actions.jitgate.dev"]
    assert rule_set(hook) == {
        ("CREATE", "autoscaling", "horizontalpodautoscalers"),
        ("UPDATE", "autoscaling", "horizontalpodautoscalers"),
    }
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert (
        conditions["spec-changed"]
        == "request.operation != 'UPDATE' || object.spec != oldObject.spec"
    )


def test_namespace_delete_and_label_changes_are_routed() -> None:
    hooks = webhooks()
    deleting = hooks["validating/namespaces.actions.jitgate.dev"]
    assert rule_set(deleting) == {("DELETE", "", "namespaces")}
    assert deleting["namespaceSelector"]["matchLabels"] == {"jitgate.dev/protected": "true"}
    labelling = hooks["validating/protection.actions.jitgate.dev"]
    # status and finalize updates can change labels too.
    assert rule_set(labelling) == {
        ("UPDATE", "", resource)
        for resource in ("namespaces", "namespaces/status", "namespaces/finalize")
    }
    # The API server matches a namespace UPDATE by its new labels: a selector on the
    # protection label would miss the update that removes it.
    assert set(labelling["namespaceSelector"]) == {"matchExpressions"}
    conditions = {c["name"]: c["expression"] for c in labelling["matchConditions"]}
    assert "object.metadata.labels" in conditions["labels-changed"]
    for hook in (deleting, labelling):
        assert [rule["scope"] for rule in hook["rules"]] == ["Cluster"]


def test_accessrequests_create_and_update_including_status_both_mutating_and_validating() -> None:
    hooks = webhooks()
    expected = {
        (op, "jitgate.dev", res)
        for op in ("CREATE", "UPDATE")
        for res in ("accessrequests", "accessrequests/status")
    }
    assert rule_set(hooks["validating/accessrequests.jitgate.dev"]) == expected
    assert rule_set(hooks["mutating/accessrequests.jitgate.dev"]) == expected
    assert hooks["mutating/accessrequests.jitgate.dev"]["reinvocationPolicy"] == "Never"


def test_grants_every_write_including_status() -> None:
    hook = webhooks()["validating/grants.jitgate.dev"]
    assert rule_set(hook) == {
        (op, "jitgate.dev", res)
        for op in ("CREATE", "UPDATE", "DELETE")
        for res in ("grants", "grants/status")
    }


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_common_settings_of_every_webhook(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    timeout = values.get("webhook", {}).get("timeoutSeconds", 5)
    for key, hook in webhooks(values).items():
        assert hook["failurePolicy"] == "Fail", key
        assert hook["sideEffects"] == "NoneOnDryRun", key
        assert hook["admissionReviewVersions"] == ["v1"], key
        assert hook["matchPolicy"] == "Equivalent", key
        assert hook["timeoutSeconds"] == timeout, key
        service = hook["clientConfig"]["service"]
        assert service == {
            "name": SVC,
            "namespace": NS,
            "path": "/mutate" if key.startswith("mutating/") else "/validate",
            "port": 443,
        }, key
        helm_tls = values.get("tls", {}).get("mode", "helm") == "helm"
        assert ("caBundle" in hook["clientConfig"]) == helm_tls, key
        for rule in hook["rules"]:
            cluster_scoped = rule["resources"][0] == "namespaces"
            assert rule["scope"] == ("Cluster" if cluster_scoped else "Namespaced"), key


def test_failure_policy_of_protected_actions_comes_from_values_own_kinds_always_fail() -> None:
    hooks = webhooks({"webhook": {"failurePolicy": "Ignore"}})
    for name in PROTECTED:
        assert hooks[f"validating/{name}"]["failurePolicy"] == "Ignore"
    for name in OWN:
        assert hooks[f"validating/{name}"]["failurePolicy"] == "Fail"
    assert hooks["mutating/accessrequests.jitgate.dev"]["failurePolicy"] == "Fail"


def excluded_names(hook: dict[str, Any]) -> set[str]:
    exprs = hook["namespaceSelector"]["matchExpressions"]
    found = [
        e for e in exprs if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"
    ]
    assert len(found) == 1
    return set(found[0]["values"])


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
@pytest.mark.parametrize("namespace", [NS, "security"])
def test_kube_system_and_the_release_namespace_are_never_selected(
    value_set: str, namespace: str
) -> None:
    c = configurations(VALUE_SETS[value_set], namespace=namespace)
    extra = set(VALUE_SETS[value_set].get("webhook", {}).get("excludedNamespaces", []))
    for config in (c["validating"], c["mutating"]):
        for hook in config["webhooks"]:
            assert excluded_names(hook) == {"kube-system", namespace} | extra, hook["name"]
            assert (
                not hook["namespaceSelector"]
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name")
            )


def test_protected_actions_only_in_labelled_namespaces_by_default() -> None:
    hooks = webhooks()
    for name in IN_PROTECTED_NAMESPACES:
        selector = hooks[f"validating/{name}"]["namespaceSelector"]
        assert selector["matchLabels"] == {"jitgate.dev/protected": "true"}
    # jitgate's own kinds and namespace labels: every namespace but the excluded ones.
    for key in (
        "validating/accessrequests.jitgate.dev",
        "validating/grants.jitgate.dev",
        "validating/protection.actions.jitgate.dev",
    ):
        assert set(hooks[key]["namespaceSelector"]) == {"matchExpressions"}
        assert len(hooks[key]["namespaceSelector"]["matchExpressions"]) == 1


def test_custom_namespace_selector_keeps_the_exclusions() -> None:
    hooks = webhooks(VALUE_SETS["custom-namespace-selector"])
    for name in IN_PROTECTED_NAMESPACES:
        selector = hooks[f"validating/{name}"]["namespaceSelector"]
        assert "matchLabels" not in selector
        assert {"key": "env", "operator": "In", "values": ["prod", "stage"]} in selector[
            "matchExpressions"
        ]
        assert excluded_names(hooks[f"validating/{name}"]) == {"kube-system", NS, "argocd"}


def _cel_list(expression: str) -> list[str]:
    """The string list literal in a CEL expression such as `x in ["a","b"]`."""
    start = expression.index("[")
    return json.loads(expression[start : expression.index("]", start) + 1])


def test_protected_actions_skip_exempt_users_and_groups_including_jitgate_itself() -> None:
    for name in PROTECTED:
        conditions = {
            c["name"]: c["expression"] for c in webhooks()[f"validating/{name}"]["matchConditions"]
        }
        users = _cel_list(conditions["not-an-exempt-user"])
        groups = _cel_list(conditions["not-in-an-exempt-group"])
        assert set(users) == {
            "system:kube-controller-manager",
            "system:kube-scheduler",
            OPERATOR_USER,
            WEBHOOK_USER,
        }
        assert set(groups) == {"system:nodes", "system:serviceaccounts:kube-system"}
        assert conditions["not-an-exempt-user"].startswith("!(request.userInfo.username in ")


def test_own_kinds_never_skip_the_operator() -> None:
    hooks = webhooks()
    for key in ("validating/accessrequests.jitgate.dev", "mutating/accessrequests.jitgate.dev"):
        assert "matchConditions" not in hooks[key]
    grants = hooks["validating/grants.jitgate.dev"]
    (condition,) = grants["matchConditions"]
    assert condition["name"] == "not-a-garbage-collector-delete"
    assert "request.operation == 'DELETE'" in condition["expression"]
    skipped = _cel_list(condition["expression"])
    assert OPERATOR_USER not in skipped
    assert "system:serviceaccount:kube-system:generic-garbage-collector" in skipped
    for hook in hooks.values():
        for c in hook.get("matchConditions", []):
            if hook["name"] in OWN:
                assert OPERATOR_USER not in c["expression"]


def test_match_conditions_can_be_turned_off() -> None:
    hooks = webhooks({"webhook": {"matchConditions": {"enabled": False}}})
    assert all("matchConditions" not in h for h in hooks.values())


def test_exemptions_reach_the_webhook_flags_too() -> None:
    objects = render.render_chart({"webhook": {"exempt": {"users": ["flux"], "groups": ["ops"]}}})
    args = render.find(objects, "StatefulSet", SVC)["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--exempt-user=flux" in args
    assert "--exempt-group=ops" in args
    assert f"--exempt-user={OPERATOR_USER}" in args
    assert f"--operator-user={OPERATOR_USER}" in args
    hook = webhooks({"webhook": {"exempt": {"users": ["flux"], "groups": ["ops"]}}})[
        "validating/connect.actions.jitgate.dev"
    ]
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert "flux" in _cel_list(conditions["not-an-exempt-user"])
    assert _cel_list(conditions["not-in-an-exempt-group"]) == ["ops"]


# --- TLS -----------------------------------------------------------------------------------


def _verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    key = issuer.public_key()
    assert cert.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
    else:
        pytest.fail(f"unexpected CA key type {type(key)}")


@pytest.mark.parametrize("namespace", [NS, "security"])
def test_ca_bundle_signs_the_serving_certificate_for_every_service_name(namespace: str) -> None:
    c = configurations({}, namespace=namespace)
    secret = render.find(c["objects"], "Secret", render.TLS_SECRET_NAME)
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    bundles = {
        hook["clientConfig"]["caBundle"]
        for config in (c["validating"], c["mutating"])
        for hook in config["webhooks"]
    }
    assert len(bundles) == 1, "every webhook must trust the same CA"
    ca_pem = base64.b64decode(bundles.pop())
    assert ca_pem == data["ca.crt"]
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    key = serialization.load_pem_private_key(data["tls.key"], password=None)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject
    _verify_signed_by(cert, ca)
    cert.verify_directly_issued_by(ca)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    # ECDSA P-256, as cert-manager mode issues: each new connection's handshake signs with the
    # serving key on the webhook's event loop (~20 µs; RSA-2048 ~240 µs).
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)

    sans = set(
        cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    )
    assert sans == {
        SVC,
        f"{SVC}.{namespace}",
        f"{SVC}.{namespace}.svc",
        f"{SVC}.{namespace}.svc.cluster.local",
    }
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=3000)


def test_cluster_domain_reaches_the_certificate() -> None:
    objects = render.render_chart({"clusterDomain": "corp.internal"})
    secret = render.find(objects, "Secret", render.TLS_SECRET_NAME)
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{SVC}.{NS}.svc.corp.internal" in sans.get_values_for_type(x509.DNSName)


def test_the_webhook_pods_mount_the_certificate_the_configurations_trust() -> None:
    objects = render.render_chart({})
    pod = render.find(objects, "StatefulSet", SVC)["spec"]["template"]["spec"]
    tls_volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == render.TLS_SECRET_NAME
    container = pod["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert mount["mountPath"] == "/tls" and "subPath" not in mount  # updates reach the pod
    assert "--tls-cert=/tls/tls.crt" in container["args"]
    assert "--tls-key=/tls/tls.key" in container["args"]


@pytest.mark.parametrize("value_set", ["cert-manager", "cert-manager-cluster-issuer"])
def test_cert_manager_issues_the_certificate_and_injects_the_ca(value_set: str) -> None:
    c = configurations(VALUE_SETS[value_set])
    objects = c["objects"]
    certificate = render.find(objects, "Certificate", SVC)
    assert certificate["spec"]["secretName"] == render.TLS_SECRET_NAME
    assert set(certificate["spec"]["dnsNames"]) == {
        SVC,
        f"{SVC}.{NS}",
        f"{SVC}.{NS}.svc",
        f"{SVC}.{NS}.svc.cluster.local",
    }
    for config in (c["validating"], c["mutating"]):
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NS}/{SVC}"
        for hook in config["webhooks"]:
            assert "caBundle" not in hook["clientConfig"]
    # cert-manager writes the Secret; the chart must not render one too.
    assert not [
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"] == render.TLS_SECRET_NAME
    ]
    issuers = render.by_kind(objects, "Issuer")
    if value_set == "cert-manager":
        assert certificate["spec"]["issuerRef"]["name"] == "jitgate-ca"
        ca = render.find(objects, "Certificate", "jitgate-ca")
        assert ca["spec"]["isCA"] is True
        assert {i["metadata"]["name"] for i in issuers} == {"jitgate-selfsigned", "jitgate-ca"}
    else:
        assert certificate["spec"]["issuerRef"] == {
            "name": "corp-ca",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        }
        assert not issuers


def test_configurations_can_be_pointed_at_a_local_webhook() -> None:
    configs = render.webhook_configurations_for_url("https://127.0.0.1:9443/", b"PEM")
    assert sorted(c["kind"] for c in configs) == [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    for config in configs:
        for hook in config["webhooks"]:
            assert hook["clientConfig"]["url"] in (
                "https://127.0.0.1:9443/validate",
                "https://127.0.0.1:9443/mutate",
            )
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"PEM"
            assert "service" not in hook["clientConfig"]


def test_helm_mode_reuses_the_existing_secret_via_lookup() -> None:
    """Offline, `lookup` finds nothing; the template must still read the existing Secret."""
    source = (render.CHART_DIR / "templates" / "webhook-admission.yaml").read_text()
    assert 'lookup "v1" "Secret" $ns $secretName' in source
    for key in ("tls.crt", "tls.key", "ca.crt"):
        assert f'index $existing.data "{key}"' in source
    readme = (render.CHART_DIR / "README.md").read_text()
    assert "lookup" in readme


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_name: str) -> ssl.SSLObject:
    """A whole TLS handshake between the two contexts in memory; the server's end."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_end = server.wrap_bio(to_server, to_client, server_side=True)
    client_end = client.wrap_bio(to_client, to_server, server_hostname=server_name)
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, end in (("client", client_end), ("server", server_end)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return server_end
    raise AssertionError("the handshake did not finish")


def test_the_generated_certificates_serve_the_webhook_and_authenticate_the_api_server(
    tmp_path: Path,
) -> None:
    """What the chart generates, loaded as the webhook loads it (`--tls-cert-file`,
    `--tls-key-file`, `--client-ca`), completes a handshake with a client that trusts the
    caBundle and presents the API server's client certificate, as the API server does."""
    objects = render.render_chart({"webhook": {"clientAuth": {"enabled": True}}})
    serving = _decoded(render.find(objects, "Secret", render.TLS_SECRET_NAME))
    calling = _decoded(render.find(objects, "Secret", f"{SVC}-client"))
    for name, data in {**_prefixed("serving", serving), **_prefixed("calling", calling)}.items():
        (tmp_path / name).write_bytes(data)
    server = ReloadingTLS(
        tmp_path / "serving-tls.crt",
        tmp_path / "serving-tls.key",
        client_ca=tmp_path / "calling-ca.crt",
    ).context
    client = ssl.create_default_context(cafile=str(tmp_path / "serving-ca.crt"))
    client.load_cert_chain(tmp_path / "calling-tls.crt", tmp_path / "calling-tls.key")

    server_end = _handshake(server, client, f"{SVC}.{render.NAMESPACE}.svc")

    der = server_end.getpeercert(binary_form=True)
    assert der is not None
    subject = x509.load_der_x509_certificate(der).subject
    assert subject.rfc4514_string() == "CN=kube-apiserver-webhook-client"


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def _prefixed(prefix: str, data: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}-{key}": value for key, value in data.items()}
