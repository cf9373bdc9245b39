"""`jitgate.kube.load_credentials`: one precedence rule for the operator, webhook and client."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jitgate.kube import CredentialsError, load_credentials


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


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer kubeconfig, no pod: each test says what is there."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return home


def test_an_explicit_kubeconfig_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = kubeconfig(tmp_path / "explicit", "https://127.0.0.1:6443", namespace="prod")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", "https://127.0.0.2:6443")))
    credentials = load_credentials(explicit)
    assert (credentials.server, credentials.namespace) == ("https://127.0.0.1:6443", "prod")
    assert (credentials.user, credentials.scheme, credentials.token) == (
        "alice", "Bearer", "alice-token"
    )  # fmt: skip
    assert credentials.source == f"kubeconfig {explicit}"


def test_kubeconfig_from_the_environment_beats_the_home_one(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig(home / ".kube" / "config", "https://127.0.0.3:6443")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", "https://127.0.0.2:6443")))
    assert load_credentials().server == "https://127.0.0.2:6443"


def test_outside_a_pod_the_home_kubeconfig_is_last(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig(home / ".kube" / "config", "https://127.0.0.3:6443")
    # A pod's environment without its mounted token is no pod: the home kubeconfig is used.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.9")
    credentials = load_credentials()
    assert (credentials.server, credentials.namespace) == ("https://127.0.0.3:6443", "default")


def test_a_context_picks_the_user_and_namespace(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", namespace="prod")
    credentials = load_credentials(path, "other")
    assert (credentials.user, credentials.token, credentials.namespace) == (
        "bob", "bob-token", "default"
    )  # fmt: skip
    client = credentials.client_configuration()
    assert client.host == "https://127.0.0.1:6443"
    assert client is not credentials.configuration


@pytest.mark.parametrize(
    ("content", "context", "message"),
    [
        (None, None, "no kubeconfig found at {path}; pass --kubeconfig or set KUBECONFIG"),
        ("clusters: [", None, "cannot read the kubeconfig {path}: it is not valid YAML"),
        ("valid", "nobody", 'context "nobody" not found in the kubeconfig'),
    ],
    ids=["missing", "not-yaml", "unknown-context"],
)
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
