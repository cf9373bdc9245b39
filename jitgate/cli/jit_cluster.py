"""The cluster as `kubectl jit` sees it: kubeconfig, AccessRequest calls, one-sentence errors."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from jitgate.cli.options import EXIT_CHECK_FAILED, EXIT_USAGE
from jitgate.core.api import GROUP, VERSION

PLURAL = "accessrequests"
GRANTS = "grants"
# Connect and read timeouts for ordinary calls: kubectl's users expect an answer, not a hang.
_TIMEOUT = (10.0, 60.0)
_NOT_SERVED = "the server could not find the requested resource"

Json = dict[str, Any]
# What the kubernetes client raises for a kubeconfig that is there but unusable.
_BROKEN_KUBECONFIG = (ConfigException, OSError, ValueError, KeyError, TypeError, AttributeError)


class CommandError(Exception):
    """A failure to report as one sentence, with the exit code to leave with."""

    def __init__(
        self, message: str, code: int = EXIT_CHECK_FAILED, *, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status  # the API server's answer, when there was one


@dataclass(frozen=True)
class Session:
    """A client for the kubeconfig's cluster, and the namespace commands default to."""

    api: client.ApiClient
    namespace: str
    host: str
    kubeconfig_user: str | None


def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    if kubeconfig:
        return [kubeconfig]
    listed = os.environ.get("KUBECONFIG", "")
    paths = [path for path in listed.split(os.pathsep) if path]
    return paths or [os.path.expanduser("~/.kube/config")]


def open_session(kubeconfig: str | None, context: str | None, namespace: str | None) -> Session:
    """Read the kubeconfig the way kubectl does: `--kubeconfig`, else `KUBECONFIG`, else ~."""
    paths = _kubeconfig_paths(kubeconfig)
    if not any(os.path.exists(os.path.expanduser(path)) for path in paths):
        raise CommandError(
            f"no kubeconfig found at {os.pathsep.join(paths)}; pass --kubeconfig or set KUBECONFIG",
            EXIT_USAGE,
        )
    try:
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except yaml.YAMLError as error:
        raise CommandError(
            f"cannot read the kubeconfig {os.pathsep.join(paths)}: it is not valid YAML", EXIT_USAGE
        ) from error
    except _BROKEN_KUBECONFIG as error:
        reason = str(error).rstrip(".")
        raise CommandError(
            f"cannot read the kubeconfig {os.pathsep.join(paths)}: {reason}", EXIT_USAGE
        ) from error
    chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    if context is not None and chosen is None:
        raise CommandError(f'context "{context}" not found in the kubeconfig', EXIT_USAGE)
    chosen = chosen or current or {}
    details = chosen.get("context") or {}
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except _BROKEN_KUBECONFIG as error:
        reason = str(error).rstrip(".")
        raise CommandError(f"cannot use the kubeconfig: {reason}", EXIT_USAGE) from error
    # kubectl fails at once on an unreachable server; urllib3 would retry three times first.
    configuration.retries = 0
    if not configuration.verify_ssl:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return Session(
        api=client.ApiClient(configuration),
        namespace=namespace or details.get("namespace") or "default",
        host=str(configuration.host),
        kubeconfig_user=details.get("user"),
    )


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    reason = f" {error.reason}" if error.reason else ""
    return f"the API server answered {error.status}{reason}"


def _chain(error: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (urllib3 keeps causes in `reason`)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain) and len(chain) < 20:
        chain.append(current)
        reason = getattr(current, "reason", None)
        follow = reason if isinstance(reason, BaseException) else None
        current = follow or current.__cause__ or current.__context__
    return chain


def _unreachable_reason(error: BaseException) -> str:
    chain = _chain(error)
    # Most specific first: urllib3's NewConnectionError is itself a ConnectTimeoutError.
    reasons: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (ConnectionRefusedError, "connection refused"),
        (
            (socket.gaierror, urllib3.exceptions.NameResolutionError),
            "the host name does not resolve",
        ),
        ((ssl.SSLError, urllib3.exceptions.SSLError), "TLS failed"),
        (urllib3.exceptions.ReadTimeoutError, "the API server did not answer in time"),
        ((urllib3.exceptions.ConnectTimeoutError, TimeoutError), "the connection timed out"),
    ]
    for kinds, reason in reasons:
        match = next((item for item in chain if isinstance(item, kinds)), None)
        if match is not None:
            return f"{reason} ({match})" if reason == "TLS failed" else reason
    return str(chain[-1])


def _json(value: object) -> Json:
    if not isinstance(value, dict):
        raise CommandError(f"the API server answered with {type(value).__name__}, not an object")
    return value


class AccessRequests:
    """The AccessRequest calls `kubectl jit` makes, with errors turned into CommandErrors."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._custom = client.CustomObjectsApi(session.api)

    @contextlib.contextmanager
    def _errors(self, namespace: str | None = None, name: str | None = None) -> Iterator[None]:
        try:
            yield
        except ApiException as error:
            message = _status_message(error)
            if error.status == 404 and message == _NOT_SERVED:
                message = (
                    f"the cluster does not serve {PLURAL}.{GROUP}/{VERSION}; is jitgate installed?"
                )
            elif error.status == 404 and name is not None:
                message = f'accessrequest "{name}" not found in namespace "{namespace}"'
            elif error.status == 401:
                message = f"the API server rejected your credentials ({message})"
            raise CommandError(message, http_status=error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise CommandError(
                f"cannot reach the Kubernetes API at {self.session.host}: "
                f"{_unreachable_reason(error)}"
            ) from error

    def get(self, namespace: str, name: str) -> Json:
        with self._errors(namespace, name):
            result = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=_TIMEOUT
            )
        return _json(result)

    def list_requests(self, namespace: str | None) -> Json:
        """Every AccessRequest in `namespace`, or in all namespaces for None."""
        with self._errors(namespace):
            if namespace is None:
                result = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=_TIMEOUT
                )
            else:
                result = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=_TIMEOUT
                )
        return _json(result)

    def create(self, namespace: str, body: Json) -> Json | None:
        """The created object, or None when the name is taken."""
        with self._errors(namespace):
            try:
                result = self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, body, _request_timeout=_TIMEOUT
                )
            except ApiException as error:
                if error.status == 409:
                    return None
                raise
        # Some servers answer 200 with no body the client can decode; the body sent is the object.
        return result if isinstance(result, dict) else body

    def patch_status(self, namespace: str, name: str, operations: list[Json]) -> Json:
        """Apply a JSON patch to the status subresource."""
        with self._errors(namespace, name):
            result = self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                operations,
                _content_type="application/json-patch+json",
                _request_timeout=_TIMEOUT,
            )
        return _json(result)

    def merge_patch(self, namespace: str, name: str, patch: Json) -> Json:
        with self._errors(namespace, name):
            result = self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
                _request_timeout=_TIMEOUT,
            )
        return _json(result)

    def get_grant(self, namespace: str, name: str) -> Json | None:
        """The Grant, or None where it is gone or the user may not read grants."""
        try:
            with self._errors(namespace):
                result = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, GRANTS, name, _request_timeout=_TIMEOUT
                )
        except CommandError:
            return None
        return result if isinstance(result, dict) else None

    def whoami(self) -> str | None:
        """The authenticated user name (SelfSubjectReview), or None where it is not served."""
        review = client.V1SelfSubjectReview(
            api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
        )
        try:
            with self._errors():
                answer = client.AuthenticationV1Api(self.session.api).create_self_subject_review(
                    review, _request_timeout=_TIMEOUT
                )
        except CommandError:
            return None
        user = getattr(
            getattr(getattr(answer, "status", None), "user_info", None), "username", None
        )
        return user if isinstance(user, str) and user else None

    def watch(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[Json]:
        """The watch events for one request until the stream ends or the deadline passes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        with self._errors(namespace, name):
            response = self._custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                watch=True,
                timeout_seconds=max(1, int(remaining)),
                _preload_content=False,
                _request_timeout=(_TIMEOUT[0], max(1.0, remaining)),
            )
        if not isinstance(response, urllib3.BaseHTTPResponse):
            raise CommandError("the kubernetes client returned no stream to watch")
        try:
            buffer = b""
            while time.monotonic() < deadline:
                try:
                    chunk = response.read1(65536)
                except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                    return
                except (urllib3.exceptions.HTTPError, OSError):
                    return  # the stream broke; the caller re-reads and watches again
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()
