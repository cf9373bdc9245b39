"""One way to load cluster credentials, for the operator, the webhook and `kubectl jit`.

The rule, the same for every part of jitgate (`load_credentials(kubeconfig, context)`):

1. an explicit kubeconfig file (`--kubeconfig`);
2. else the files listed in `$KUBECONFIG` (merged as kubectl merges them);
3. else the in-cluster service account, when running in a pod (`KUBERNETES_SERVICE_HOST`
   and the mounted token) and no `--context` names a kubeconfig context;
4. else `~/.kube/config`.

With a kubeconfig, `context` picks the context, else its current-context does. What is
loaded comes back as one typed `Credentials`; each part keeps its own HTTP stack: the
`kubernetes` client (webhook, `kubectl jit`) builds on `Credentials.client_configuration()`,
which keeps the loaders' token refresh; kopf and the operator's aiohttp calls read the plain
fields. Anything unusable raises `CredentialsError`, whose message is one plain sentence.

Only the `kubernetes` client is imported here (the `kubectl jit` client depends on it
anyway), no server framework.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

IN_CLUSTER: Final = "the in-cluster service account"
_DEFAULT_KUBECONFIG: Final = "~/.kube/config"
_NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# What the kubernetes client raises for a kubeconfig that is there but unusable.
_BROKEN_KUBECONFIG = (ConfigException, OSError, ValueError, KeyError, TypeError, AttributeError)


class CredentialsError(Exception):
    """No usable credentials: a missing or broken kubeconfig, an unknown context."""


@dataclass(frozen=True)
class Credentials:
    """Who to talk to, as whom, and the namespace commands default to."""

    source: str  # `kubeconfig /home/me/.kube/config` or IN_CLUSTER
    server: str
    namespace: str  # the context's namespace, or the service account's; else "default"
    user: str | None = None  # the kubeconfig's user entry, for display and naming
    ca_path: str | None = None
    insecure: bool = False
    scheme: str | None = None  # of the Authorization header, e.g. Bearer
    token: str | None = None
    username: str | None = None
    password: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    configuration: Any = field(default=None, compare=False, repr=False)

    def client_configuration(self) -> client.Configuration:
        """A fresh `kubernetes` client configuration (token refresh included) to adjust."""
        configuration: client.Configuration = copy.copy(self.configuration)
        return configuration


def load_credentials(
    kubeconfig: str | Path | None = None, context: str | None = None
) -> Credentials:
    """The credentials the module docstring's rule picks; CredentialsError if none can be used."""
    if kubeconfig:
        return _from_kubeconfig([str(kubeconfig)], context)
    listed = [path for path in os.environ.get("KUBECONFIG", "").split(os.pathsep) if path]
    if listed:
        return _from_kubeconfig(listed, context)
    if context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except ConfigException:
            pass  # not a usable pod after all (no mounted token): try the home kubeconfig
        else:
            return _credentials(IN_CLUSTER, configuration, _service_account_namespace(), None)
    return _from_kubeconfig([_DEFAULT_KUBECONFIG], context)


def _from_kubeconfig(paths: list[str], context: str | None) -> Credentials:
    shown = os.pathsep.join(paths)
    if not any(os.path.exists(os.path.expanduser(path)) for path in paths):
        raise CredentialsError(
            f"no kubeconfig found at {os.pathsep.join(os.path.expanduser(p) for p in paths)}; "
            "pass --kubeconfig or set KUBECONFIG"
        )
    try:
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=shown
        )
    except yaml.YAMLError as error:
        raise CredentialsError(
            f"cannot read the kubeconfig {shown}: it is not valid YAML"
        ) from error
    except _BROKEN_KUBECONFIG as error:
        reason = str(error).rstrip(".")
        raise CredentialsError(f"cannot read the kubeconfig {shown}: {reason}") from error
    chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    if context is not None and chosen is None:
        raise CredentialsError(f'context "{context}" not found in the kubeconfig')
    details = (chosen or current or {}).get("context") or {}
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=shown,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except _BROKEN_KUBECONFIG as error:
        reason = str(error).rstrip(".")
        raise CredentialsError(f"cannot use the kubeconfig: {reason}") from error
    namespace = details.get("namespace") or "default"
    return _credentials(f"kubeconfig {shown}", configuration, namespace, details.get("user"))


def _service_account_namespace() -> str:
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _credentials(
    source: str, configuration: client.Configuration, namespace: str, user: str | None
) -> Credentials:
    header: str | None = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else parts
    return Credentials(
        source=source,
        server=str(configuration.host),
        namespace=namespace,
        user=user,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        username=configuration.username or None,
        password=configuration.password or None,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        configuration=configuration,
    )
