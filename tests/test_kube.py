"""`jitgate.kube.load_credentials`: one precedence rule for the operator, webhook and client,
and every way a kubeconfig or a pod says who to be (tokens, token files, exec plugins, client
certificates, certificate authorities), renewed when they expire."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.clocks import NOW

from jitgate import kube
from jitgate.core.clock import ManualClock, format_time
from jitgate.devtools.devcerts import DevCA
from jitgate.kube import CredentialsError, Token, load_credentials


def kubeconfig(path: Path, server: str, *, namespace: str | None = None) -> Path:
    """A kubeconfig with contexts `main` (current) and `other`, both on `server`."""
    context = {"cluster": "c", "user": "alice", **({"namespace": namespace} if namespace else {})}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [
                    {"name": "alice", "user": {"token": "alice-token"}},
                    {"name": "bob", "user": {"token": "bob-token"}},
                ],
                "contexts": [
                    {"name": "main", "context": context},
                    {"name": "other", "context": {"cluster": "c", "user": "bob"}},
                ],
                "current-context": "main",
            }
        )
    )
    return path


def one_user(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    """A kubeconfig whose one context is `user` on a cluster at https://127.0.0.1:6443."""
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})},
                    }
                ],
                "users": [{"name": "me", "user": user}],
                "contexts": [{"name": "main", "context": {"cluster": "c", "user": "me"}}],
                "current-context": "main",
            }
        )
    )
    return path


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer kubeconfig, no pod: each test says what is there."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", tmp_path / "no-service-account")
    return home


# ------------------------------------------------------------------------ the precedence rule


def test_an_explicit_kubeconfig_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = kubeconfig(tmp_path / "explicit", "https://127.0.0.1:6443", namespace="prod")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", "https://127.0.0.2:6443")))
    credentials = load_credentials(explicit)
    assert (credentials.server, credentials.namespace) == ("https://127.0.0.1:6443", "prod")
    assert (credentials.user, credentials.authorization()) == ("alice", "Bearer alice-token")
    assert credentials.source == f"kubeconfig {explicit}"


def test_kubeconfig_from_the_environment_beats_the_home_one(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig(home / ".kube" / "config", "https://127.0.0.3:6443")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", "https://127.0.0.2:6443")))
    assert load_credentials().server == "https://127.0.0.2:6443"


def test_kubeconfig_files_merge_as_kubectl_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "first", "https://127.0.0.1:6443")
    second = tmp_path / "second"
    second.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.9:6443"}},
                    {"name": "d", "cluster": {"server": "https://127.0.0.4:6443"}},
                ],
                "users": [{"name": "carol", "user": {"token": "carol-token"}}],
                "contexts": [{"name": "third", "context": {"cluster": "d", "user": "carol"}}],
                "current-context": "third",
            }
        )
    )
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, (missing, first, second))))
    # The first file to name a cluster or set a current-context wins; a missing one is skipped.
    assert load_credentials().server == "https://127.0.0.1:6443"
    third = load_credentials(context="third")
    assert (third.server, third.authorization()) == ("https://127.0.0.4:6443", "Bearer carol-token")


def test_outside_a_pod_the_home_kubeconfig_is_last(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig(home / ".kube" / "config", "https://127.0.0.3:6443")
    # A pod's environment without its mounted token is no pod: the home kubeconfig is used.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.9")
    credentials = load_credentials()
    assert (credentials.server, credentials.namespace) == ("https://127.0.0.3:6443", "default")


def test_in_a_pod_the_service_account_is_used_and_its_token_re_read(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig(home / ".kube" / "config", "https://127.0.0.3:6443")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("first-token")
    (account / "ca.crt").write_text("a CA")
    (account / "namespace").write_text("jitgate")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    clock = ManualClock(NOW)
    credentials = load_credentials(clock=clock)
    assert (credentials.source, credentials.server, credentials.namespace) == (
        kube.IN_CLUSTER, "https://[fd00::1]:443", "jitgate"
    )  # fmt: skip
    assert credentials.ca_path == str(account / "ca.crt")
    assert credentials.token() == Token("first-token")
    (account / "token").write_text("rotated-token")  # the kubelet rotates it
    clock.advance(dt.timedelta(seconds=59))
    assert credentials.authorization() == "Bearer first-token"
    clock.advance(dt.timedelta(seconds=1))
    assert credentials.authorization() == "Bearer rotated-token"
    # A --context means a kubeconfig context, even in a pod.
    assert load_credentials(context="main").server == "https://127.0.0.3:6443"


def test_a_context_picks_the_user_and_namespace(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", namespace="prod")
    credentials = load_credentials(path, "other")
    assert (credentials.user, credentials.namespace) == ("bob", "default")
    assert credentials.token() == Token("bob-token")


# ------------------------------------------------------------------------ who to be


def test_a_token_file_is_read_relative_to_the_kubeconfig_and_re_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    clock = ManualClock(NOW)
    credentials = load_credentials(
        one_user(tmp_path / "config", {"tokenFile": "token"}), clock=clock
    )
    assert credentials.authorization() == "Bearer file-token"
    (tmp_path / "token").write_text("next-token\n")
    clock.advance(dt.timedelta(minutes=1))
    assert credentials.authorization() == "Bearer next-token"


def test_basic_auth(tmp_path: Path) -> None:
    credentials = load_credentials(
        one_user(tmp_path / "config", {"username": "admin", "password": "s3cret"})
    )
    assert credentials.authorization() == "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert credentials.token() is None


PLUGIN = """#!{python}
import json, os, pathlib, sys

runs = pathlib.Path(sys.argv[1])
runs.write_text(str(int(runs.read_text() or "0") + 1) if runs.exists() else "1")
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
pathlib.Path(sys.argv[2]).write_text(json.dumps({{"info": info, "team": os.environ["TEAM"]}}))
status = {{"token": "exec-token-" + runs.read_text(), "expirationTimestamp": "{expires}"}}
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


def exec_user(tmp_path: Path, expires: dt.datetime, **extra: Any) -> dict[str, Any]:
    """A user whose token comes from a small plugin script next to the kubeconfig."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    plugin = bin_dir / "token-plugin"
    plugin.write_text(PLUGIN.format(python=sys.executable, expires=format_time(expires)))
    plugin.chmod(0o755)
    spec = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "./bin/token-plugin",  # relative to the kubeconfig, as in kubectl
        "args": [str(tmp_path / "runs"), str(tmp_path / "seen.json")],
        "env": [{"name": "TEAM", "value": "payments"}],
        "interactiveMode": "Never",
        **extra,
    }
    return {"exec": spec}


def test_an_exec_plugin_gives_the_token_and_runs_again_when_it_expires(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    user = exec_user(tmp_path, NOW + dt.timedelta(minutes=5), provideClusterInfo=True)
    credentials = load_credentials(one_user(tmp_path / "config", user), clock=clock)
    token = credentials.token()
    assert token == Token("exec-token-1", NOW + dt.timedelta(minutes=5))
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {
        "info": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "spec": {"interactive": False, "cluster": {"server": "https://127.0.0.1:6443"}},
        },
        "team": "payments",
    }
    clock.advance(dt.timedelta(minutes=4))
    assert credentials.authorization() == "Bearer exec-token-1"
    clock.advance(dt.timedelta(minutes=1))
    # This plugin always says 10:05, so from now on every call runs it again.
    assert credentials.authorization() == "Bearer exec-token-2"
    assert (tmp_path / "runs").read_text() == "2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"command": "no-such-plugin", "installHint": "Install it with: brew install it"},
            'the credential plugin "no-such-plugin" is not installed; '
            "Install it with: brew install it",
        ),
        ({"command": "false"}, 'the credential plugin "false" failed (exit status 1)'),
        ({"command": "true"}, 'the credential plugin "true" printed no ExecCredential (not JSON)'),
    ],
    ids=["not-installed", "fails", "prints-nothing"],
)
def test_an_exec_plugin_that_gives_nothing_is_one_sentence(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    user = exec_user(tmp_path, NOW)
    user["exec"] = {**user["exec"], "args": [], **change}
    with pytest.raises(CredentialsError) as raised:
        load_credentials(one_user(tmp_path / "config", user))
    assert str(raised.value) == message


def tls_answer(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> str:
    """Connect over TLS to a server on 127.0.0.1 that answers with the client's common name."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            # A client that does not trust this server hangs up during the handshake.
            with (
                contextlib.suppress(ssl.SSLError),
                server_context.wrap_socket(connection, server_side=True) as tls,
            ):
                peer: Any = tls.getpeercert()
                names = [value for ((key, value),) in peer["subject"] if key == "commonName"]
                tls.sendall(names[0].encode())

        server = threading.Thread(target=serve)
        server.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            answer = tls.recv(100).decode()
        server.join(timeout=10)
        return answer


@pytest.fixture
def authority(tmp_path: Path) -> tuple[DevCA, ssl.SSLContext]:
    """A CA, and a server context that presents its certificate and requires a client's."""
    ca = DevCA(tmp_path / "pki", "kube test CA")
    cert, key = ca.issue("apiserver")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_file))
    server.load_cert_chain(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED
    return ca, server


def test_client_certificate_files_and_ca_data_reach_a_tls_server(
    tmp_path: Path, authority: tuple[DevCA, ssl.SSLContext]
) -> None:
    ca, server = authority
    ca.issue("alice", server=False, client=True)
    user = {"client-certificate": "pki/alice.crt", "client-key": "pki/alice.key"}
    cluster = {"certificate-authority-data": base64.b64encode(ca.pem).decode()}
    credentials = load_credentials(one_user(tmp_path / "config", user, cluster))
    assert credentials.certificate_path == str(tmp_path / "pki" / "alice.crt")
    assert credentials.ca_path is not None
    assert Path(credentials.ca_path).read_bytes() == ca.pem
    assert stat.S_IMODE(os.stat(credentials.ca_path).st_mode) == 0o600
    assert credentials.authorization() is None
    assert tls_answer(server, credentials.ssl_context()) == "alice"


def test_client_certificate_data_and_a_ca_file_reach_a_tls_server(
    tmp_path: Path, authority: tuple[DevCA, ssl.SSLContext]
) -> None:
    ca, server = authority
    cert, key = ca.issue("bob", server=False, client=True)
    user = {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
    credentials = load_credentials(
        one_user(tmp_path / "config", user, {"certificate-authority": "pki/ca.crt"})
    )
    assert credentials.ca_path == str(tmp_path / "pki" / "ca.crt")
    assert tls_answer(server, credentials.ssl_context()) == "bob"


def test_an_untrusted_server_fails_and_insecure_skip_tls_verify_skips_the_check(
    tmp_path: Path, authority: tuple[DevCA, ssl.SSLContext]
) -> None:
    ca, server = authority
    ca.issue("carol", server=False, client=True)
    user = {"client-certificate": "pki/carol.crt", "client-key": "pki/carol.key"}
    other = DevCA(tmp_path / "other", "some other CA")
    untrusted = load_credentials(
        one_user(tmp_path / "config", user, {"certificate-authority": str(other.cert_file)})
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_answer(server, untrusted.ssl_context())
    insecure = load_credentials(
        one_user(tmp_path / "config", user, {"insecure-skip-tls-verify": True})
    )
    assert (insecure.insecure, insecure.ca_path) == (True, None)
    assert tls_answer(server, insecure.ssl_context()) == "carol"


# ------------------------------------------------------------------------ one-sentence failures


@pytest.mark.parametrize(
    ("content", "context", "message"),
    [
        (None, None, "no kubeconfig found at {path}; pass --kubeconfig or set KUBECONFIG"),
        ("clusters: [", None, "cannot read the kubeconfig {path}: it is not valid YAML"),
        ("valid", "nobody", 'context "nobody" not found in the kubeconfig'),
        ("clusters: []", None, "cannot use the kubeconfig {path}: it sets no current-context; "
                               "pass --context"),
    ],
    ids=["missing", "not-yaml", "unknown-context", "no-current-context"],
)  # fmt: skip
def test_unusable_credentials_are_one_sentence(
    tmp_path: Path, content: str | None, context: str | None, message: str
) -> None:
    path = tmp_path / "config"
    if content == "valid":
        kubeconfig(path, "https://127.0.0.1:6443")
    elif content is not None:
        path.write_text(content)
    with pytest.raises(CredentialsError) as raised:
        load_credentials(path, context)
    assert str(raised.value) == message.format(path=path)


@pytest.mark.parametrize(
    ("user", "cluster", "reason"),
    [
        ({"client-certificate": "gone.crt"}, {},
         "its client-certificate {dir}/gone.crt does not exist"),
        ({"token": "t"}, {"certificate-authority-data": "not base64!"},
         "its certificate-authority-data is not base64"),
        ({"auth-provider": {"name": "oidc"}}, {},
         'the user "me" uses the auth-provider "oidc", which jitgate does not support; '
         "use an exec credential plugin"),
        ({"exec": {"command": "x", "apiVersion": "client.authentication.k8s.io/v1alpha1"}}, {},
         'the user "me" asks for the exec API version client.authentication.k8s.io/v1alpha1; '
         "jitgate speaks client.authentication.k8s.io/v1 and "
         "client.authentication.k8s.io/v1beta1"),
    ],
    ids=["missing-file", "bad-data", "auth-provider", "old-exec"],
)  # fmt: skip
def test_an_unusable_user_or_cluster_is_one_sentence(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any], reason: str
) -> None:
    path = one_user(tmp_path / "config", user, cluster)
    with pytest.raises(CredentialsError) as raised:
        load_credentials(path)
    assert str(raised.value) == f"cannot use the kubeconfig {path}: " + reason.format(dir=tmp_path)
