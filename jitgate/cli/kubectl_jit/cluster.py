"""The cluster as `kubectl jit` sees it: a session, AccessRequest calls, one-sentence errors."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jitgate.cli.errors import ApiRefused, CliError, CommandFailed, UsageError
from jitgate.cli.kubectl_jit.options import Cluster
from jitgate.core.api import GROUP, VERSION
from jitgate.kube import CredentialsError, load_credentials

PLURAL = "accessrequests"
GRANTS = "grants"
# Connect and read timeouts for ordinary calls: kubectl's users expect an answer, not a hang.
_TIMEOUT = (10.0, 60.0)
_NOT_SERVED = "the server could not find the requested resource"

Json = dict[str, Any]


@dataclass(frozen=True)
class Session:
    """A client for the chosen cluster, and the namespace commands default to."""

    api: client.ApiClient
    namespace: str
    host: str
    kubeconfig_user: str | None


def open_session(cluster: Cluster) -> Session:
    """Connect as `jitgate.kube`'s rule says: `--kubeconfig`, else `KUBECONFIG`, else the
    in-cluster service account, else ~/.kube/config; `--context` picks the context."""
    try:
        credentials = load_credentials(cluster.kubeconfig, cluster.context)
    except CredentialsError as error:
        raise UsageError(str(error)) from error
    configuration = credentials.client_configuration()
    # kubectl fails at once on an unreachable server; urllib3 would retry three times first.
    configuration.retries = 0
    if not configuration.verify_ssl:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return Session(
        api=client.ApiClient(configuration),
        namespace=cluster.namespace or credentials.namespace,
        host=credentials.server,
        kubeconfig_user=credentials.user,
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
        raise CommandFailed(f"the API server answered with {type(value).__name__}, not an object")
    return value


class AccessRequests:
    """The AccessRequest calls `kubectl jit` makes; failures raise CommandFailed."""

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
            raise ApiRefused(message, error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise CommandFailed(
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
        except CliError:
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
        except CliError:
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
            raise CommandFailed("the kubernetes client returned no stream to watch")
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
