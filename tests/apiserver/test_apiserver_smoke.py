"""Smoke tests of the real API server tier: personas, RBAC, admission before the kubelet,
ValidatingAdmissionPolicy on CONNECT, and CEL validation of a CRD."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.apiserver

NODE = "node-1"


def _pod(namespace: str, name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "nodeName": NODE,  # no scheduler here
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
        },
    }


@pytest.fixture(scope="module")
def cluster(kube_apiserver):
    """prod (protected) and dev namespaces, a node without kubelet, a pod in each."""
    api = kube_apiserver
    api.create_namespace("prod", labels={"jitgate.dev/protected": "true"})
    api.create_namespace("dev")
    api.create_node(NODE)
    api.apply("admin", _pod("prod"), _pod("dev"))
    api.set_pod_phase("prod", "web")  # port-forward wants a Running pod
    return api


def test_personas_authenticate_with_their_groups(kube_apiserver):
    for name, persona in kube_apiserver.personas.items():
        proc = kube_apiserver.kubectl(name, "auth", "whoami", "-o", "json", check=True)
        info = json.loads(proc.stdout)["status"]["userInfo"]
        assert info["username"] == persona.username
        assert set(persona.groups) | {"system:authenticated"} == set(info["groups"])
    assert kube_apiserver.persona("system:serviceaccount:jitgate:jitgate-webhook").groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:jitgate",
    )


def test_objects_created_as_admin(cluster):
    out = cluster.kubectl("admin", "get", "ns", "prod", "-o", "json", check=True).stdout
    assert json.loads(out)["metadata"]["labels"]["jitgate.dev/protected"] == "true"
    out = cluster.kubectl("admin", "get", "pod", "web", "-n", "prod", "-o", "json", check=True)
    pod = json.loads(out.stdout)
    assert pod["spec"]["nodeName"] == NODE
    assert pod["status"]["phase"] == "Running"  # set by the fixture: no kubelet here
    assert pod["spec"]["serviceAccountName"] == "default"  # ServiceAccount admission ran
    assert cluster.kubectl("admin", "get", "node", NODE, check=True).returncode == 0


def test_rbac_denies_alice_listing_secrets(cluster):
    proc = cluster.kubectl("alice", "get", "secrets", "-n", "prod")
    assert proc.returncode != 0
    assert (
        'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" '
        'in the namespace "prod"'
    ) in proc.stderr
    can_i = cluster.kubectl("alice", "auth", "can-i", "list", "secrets", "-n", "prod")
    assert can_i.stdout.strip() == "no"
    can_i = cluster.kubectl("admin", "auth", "can-i", "list", "secrets", "-n", "prod")
    assert can_i.stdout.strip() == "yes"


def test_exec_passes_admission_then_fails_reaching_the_kubelet(cluster):
    proc = cluster.kubectl("admin", "exec", "-n", "prod", "web", "--", "true", timeout=60)
    assert proc.returncode != 0
    expected = cluster.no_kubelet_error(NODE)
    assert expected in proc.stderr, proc.stderr
    # RBAC applies to exec: alice may read pods in prod but not create pods/exec
    cluster.apply(
        "admin",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "prod"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "developers-pod-reader", "namespace": "prod"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}
            ],
        },
    )
    denied = cluster.kubectl("alice", "exec", "-n", "prod", "web", "--", "true")
    assert denied.returncode != 0
    assert (
        'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group ""'
        ' in the namespace "prod"'
    ) in denied.stderr, denied.stderr


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        (("exec", "web", "--", "true"), 'error sending request: Post "https://127.0.0.1:'),
        (("attach", "web"), 'error sending request: Post "https://127.0.0.1:'),
        (("port-forward", "pod/web", ":80"), "error upgrading connection: error dialing backend:"),
    ],
    ids=["exec", "attach", "port-forward"],
)
def test_connect_verbs_reach_the_missing_kubelet(cluster, args, prefix):
    proc = cluster.kubectl("admin", "-n", "prod", *args, timeout=30)
    assert proc.returncode != 0
    assert prefix in proc.stderr, proc.stderr
    assert cluster.no_kubelet_error(NODE) in proc.stderr, proc.stderr


def test_validating_admission_policy_sees_exec_before_the_kubelet(cluster):
    """A ValidatingAdmissionPolicy on CONNECT pods/exec denies in dev; prod is untouched.

    This proves the "no kubelet" error above only happens after admission.
    """
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "smoke-deny-exec"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CONNECT"],
                        "resources": ["pods/exec"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "smoke: exec denied in dev"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "smoke-deny-exec"},
        "spec": {
            "policyName": "smoke-deny-exec",
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}
            },
        },
    }
    cluster.apply("admin", policy, binding)
    try:
        deadline = time.monotonic() + 30
        while True:  # policies are picked up by an informer: allow a moment
            proc = cluster.kubectl("admin", "exec", "-n", "dev", "web", "--", "true")
            if "smoke: exec denied in dev" in proc.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert proc.returncode != 0
        assert "smoke: exec denied in dev" in proc.stderr, proc.stderr
        assert "ValidatingAdmissionPolicy 'smoke-deny-exec'" in proc.stderr, proc.stderr
        other = cluster.kubectl("admin", "exec", "-n", "prod", "web", "--", "true")
        assert cluster.no_kubelet_error(NODE) in other.stderr
    finally:
        cluster.kubectl(
            "admin",
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "smoke-deny-exec",
            "--ignore-not-found",
        )


def test_crd_cel_validation_is_enforced(kube_apiserver):
    api = kube_apiserver
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.jitgate.test"},
        "spec": {
            "group": "smoke.jitgate.test",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["min", "max"],
                                    "properties": {
                                        "min": {"type": "integer"},
                                        "max": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.min <= self.max",
                                            "message": "min must not exceed max",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    api.apply("admin", crd)
    api.kubectl(
        "admin",
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.smoke.jitgate.test",
        check=True,
    )

    def widget(name: str, lo: int, hi: int) -> str:
        return json.dumps(
            {
                "apiVersion": "smoke.jitgate.test/v1",
                "kind": "Widget",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"min": lo, "max": hi},
            }
        )

    ok = api.kubectl("admin", "create", "-f", "-", input=widget("good", 1, 3))
    assert ok.returncode == 0, ok.stderr
    bad = api.kubectl("admin", "create", "-f", "-", input=widget("bad", 5, 3))
    assert bad.returncode != 0
    assert "min must not exceed max" in bad.stderr, bad.stderr
    assert "spec: Invalid value" in bad.stderr, bad.stderr
    api.kubectl("admin", "delete", "crd", "widgets.smoke.jitgate.test", "--wait=false")


def test_validating_webhook_sees_exec_as_connect(cluster):
    """The API server calls a local HTTPS webhook (CA from the fixture) on CONNECT pods/exec."""
    cert, key = cluster.ca.issue("smoke-webhook", dns=["localhost"], ips=["127.0.0.1"])
    reviews: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reviews.append(review)
            body = json.dumps({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": review["request"]["uid"],
                    "allowed": False,
                    "status": {"code": 403, "message": "smoke webhook: exec needs a grant"},
                },
            }).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    cluster.create_namespace("hooked")
    rbac = "rbac.authorization.k8s.io"
    cluster.apply(
        "admin",
        _pod("hooked"),
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": "exec", "namespace": "hooked"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "sre-exec", "namespace": "hooked"},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "exec"},
            "subjects": [{"apiGroup": rbac, "kind": "Group", "name": "sre"}],
        },
    )
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "smoke-webhook"},
        "webhooks": [
            {
                "name": "exec.smoke.jitgate.test",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate",
                    "caBundle": base64.b64encode(cluster.ca.pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CONNECT"],
                        "resources": ["pods/exec"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hooked"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    cluster.apply("admin", webhook)
    try:
        deadline = time.monotonic() + 30
        while True:  # webhook configurations are picked up by an informer
            proc = cluster.kubectl("bob", "exec", "-n", "hooked", "web", "--", "true")
            if reviews or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert proc.returncode != 0
        assert (
            'admission webhook "exec.smoke.jitgate.test" denied the request: '
            "smoke webhook: exec needs a grant"
        ) in proc.stderr, proc.stderr
        request = reviews[-1]["request"]
        assert request["operation"] == "CONNECT"
        assert request["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
        assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
        assert request["subResource"] == "exec"
        assert (request["namespace"], request["name"]) == ("hooked", "web")
        assert request["userInfo"]["username"] == "bob"
        assert set(request["userInfo"]["groups"]) == {"sre", "system:authenticated"}
        assert request["object"]["command"] == ["true"]
    finally:
        cluster.kubectl("admin", "delete", "validatingwebhookconfiguration", "smoke-webhook")
        server.shutdown()
