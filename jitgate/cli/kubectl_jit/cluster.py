"""The cluster as `kubectl jit` sees it: a session, AccessRequest calls, one-sentence errors."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

from jitgate.cli.errors import ApiRefused, CliError, CommandFailed, UsageError
from jitgate.cli.kubectl_jit.options import Cluster
from jitgate.cli.kubectl_jit.rest import JSON_PATCH, MERGE_PATCH, ApiStatus, RestClient
from jitgate.core.api import GROUP, VERSION
from jitgate.kube import CredentialsError, load_credentials

PLURAL = "accessrequests"
GRANTS = "grants"
POLICIES = "accesspolicies"
# Connect and read timeouts for ordinary calls: kubectl's users expect an answer, not a hang.
_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
_NOT_SERVED = "the server could not find the requested resource"
_SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"

Json = dict[str, Any]


@dataclass(frozen=True)
class Me:
    """The authenticated caller, as the API server names them (SelfSubjectReview)."""

    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Session:
    """A client for the chosen cluster, and the namespace commands default to."""

    api: RestClient
    namespace: str
    host: str
    kubeconfig_user: str | None


def open_session(cluster: Cluster) -> Session:
    """Connect as `jitgate.kube`'s rule says: `--kubeconfig`, else `KUBECONFIG`, else the
    in-cluster service account, else ~/.kube/config; `--context` picks the context."""
    try:
        credentials = load_credentials(cluster.kubeconfig, cluster.context)
        api = RestClient(credentials, timeout=_TIMEOUT)
    except CredentialsError as error:
        raise UsageError(str(error)) from error
    return Session(
        api=api,
        namespace=cluster.namespace or credentials.namespace,
        host=credentials.server,
        kubeconfig_user=credentials.user,
    )


def _path(plural: str, namespace: str | None, name: str = "", subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}"
    if namespace is not None:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    for part in (name, subresource):
        if part:
            path += f"/{quote(part, safe='')}"
    return path


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
        self._api = session.api

    @contextlib.contextmanager
    def _errors(self, namespace: str | None = None, name: str | None = None) -> Iterator[None]:
        try:
            yield
        except ApiStatus as error:
            message = error.message
            if error.status == 404 and message == _NOT_SERVED:
                message = (
                    f"the cluster does not serve {PLURAL}.{GROUP}/{VERSION}; is jitgate installed?"
                )
            elif error.status == 404 and name is not None:
                message = f'accessrequest "{name}" not found in namespace "{namespace}"'
            elif error.status == 401:
                message = f"the API server rejected your credentials ({message})"
            raise ApiRefused(message, error.status) from error
        except CredentialsError as error:
            raise UsageError(str(error)) from error  # e.g. an exec plugin failed on renewal
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise CommandFailed(
                f"cannot reach the Kubernetes API at {self.session.host}: "
                f"{_unreachable_reason(error)}"
            ) from error

    def get(self, namespace: str, name: str) -> Json:
        with self._errors(namespace, name):
            result = self._api.call("GET", _path(PLURAL, namespace, name))
        return _json(result)

    def list_requests(self, namespace: str | None) -> Json:
        """Every AccessRequest in `namespace`, or in all namespaces for None."""
        with self._errors(namespace):
            result = self._api.call("GET", _path(PLURAL, namespace))
        return _json(result)

    def create(self, namespace: str, body: Json) -> Json | None:
        """The created object, or None when the name is taken."""
        with self._errors(namespace):
            try:
                result = self._api.call("POST", _path(PLURAL, namespace), body)
            except ApiStatus as error:
                if error.status == 409:
                    return None
                raise
        # Some servers answer 200 with no body the client can decode; the body sent is the object.
        return result if isinstance(result, dict) else body

    def patch_status(self, namespace: str, name: str, operations: list[Json]) -> Json:
        """Apply a JSON patch to the status subresource."""
        with self._errors(namespace, name):
            path = _path(PLURAL, namespace, name, "status")
            result = self._api.call("PATCH", path, operations, content_type=JSON_PATCH)
        return _json(result)

    def merge_patch(self, namespace: str, name: str, patch: Json) -> Json:
        with self._errors(namespace, name):
            path = _path(PLURAL, namespace, name)
            result = self._api.call("PATCH", path, patch, content_type=MERGE_PATCH)
        return _json(result)

    def get_grant(self, namespace: str, name: str) -> Json | None:
        """The Grant, or None where it is gone or the user may not read grants."""
        try:
            with self._errors(namespace):
                result = self._api.call("GET", _path(GRANTS, namespace, name))
        except CliError:
            return None
        return result if isinstance(result, dict) else None

    def me(self) -> Me | None:
        """The authenticated user and groups (SelfSubjectReview), or None where not served."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            with self._errors():
                answer = self._api.call("POST", _SELF_SUBJECT_REVIEWS, review)
        except CliError:
            return None
        status = answer.get("status") if isinstance(answer, dict) else None
        user_info = status.get("userInfo") if isinstance(status, dict) else None
        if not isinstance(user_info, dict):
            return None
        user, groups = user_info.get("username"), user_info.get("groups")
        if not isinstance(user, str) or not user:
            return None
        listed = groups if isinstance(groups, list) else []
        return Me(user, tuple(group for group in listed if isinstance(group, str)))

    def policies(self) -> list[Json] | None:
        """The AccessPolicies, or None where the caller may not read them."""
        try:
            with self._errors():
                result = self._api.call("GET", _path(POLICIES, None))
        except CliError:
            return None
        items = result.get("items") if isinstance(result, dict) else None
        return (
            [item for item in items if isinstance(item, dict)] if isinstance(items, list) else None
        )

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """A namespace's labels, or None where the caller may not read it."""
        try:
            with self._errors():
                result = self._api.call("GET", f"/api/v1/namespaces/{quote(namespace, safe='')}")
        except CliError:
            return None
        labels = (
            ((result or {}).get("metadata") or {}).get("labels")
            if isinstance(result, dict)
            else None
        )
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def watch(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[Json]:
        """The watch events for one request until the stream ends or the deadline passes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        query = {
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(remaining))),
        }
        with self._errors(namespace, name):
            events = self._api.watch(
                _path(PLURAL, namespace), query, read_timeout=max(1.0, remaining)
            )
        try:
            while time.monotonic() < deadline:
                try:
                    event = next(events, None)
                except (urllib3.exceptions.HTTPError, OSError):
                    return  # the stream broke or timed out; the caller re-reads and watches again
                if event is None:
                    return
                yield event
        finally:
            events.close()
