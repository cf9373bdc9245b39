"""One way to load cluster credentials, for the operator, the webhook and `kubectl jit`.

The rule, the same for every part of jitgate (`load_credentials(kubeconfig, context)`):

1. an explicit kubeconfig file (`--kubeconfig`);
2. else the files listed in `$KUBECONFIG` (merged as kubectl merges them: the first file to
   name a cluster, user or context wins, and the first current-context set wins);
3. else the in-cluster service account, when running in a pod (`KUBERNETES_SERVICE_HOST`
   and the mounted token) and no `--context` names a kubeconfig context;
4. else `~/.kube/config`.

With a kubeconfig, `context` picks the context, else its current-context does. A user entry
may give `token`, `tokenFile`, `client-certificate(-data)` and `client-key(-data)`,
`username`/`password`, or an `exec` credential plugin (`client.authentication.k8s.io/v1`, and
v1beta1); a cluster entry `certificate-authority(-data)` and `insecure-skip-tls-verify`.
Relative paths are relative to the kubeconfig file that names them, as in kubectl.

What is loaded comes back as one frozen `Credentials`: where the API server is, how to trust
it and present a client certificate (`ssl_context()`, or the file paths for clients that take
paths; `-data` fields are written to private temporary files removed at exit, as the
`kubernetes` client does), and who to be (`authorization()` for the header, `token()` for
clients that take a bearer token and its expiry). A token that expires is renewed when read:
a token file (`tokenFile`, the service account's) is re-read once a minute, as client-go does,
and an `exec` plugin runs again once its token has expired. Each program keeps its own HTTP
stack on top: `kubectl jit` urllib3, the webhook the `kubernetes` client, kopf and the
operator aiohttp. Anything unusable raises `CredentialsError`, one plain sentence.

The standard library and PyYAML only: the `kubectl jit` client installs no `kubernetes`.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import dataclasses
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from jitgate.core.clock import SYSTEM_CLOCK, Clock, parse_time

IN_CLUSTER: Final = "the in-cluster service account"
# Where a pod's service account is mounted (a module constant so tests can point elsewhere).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_DEFAULT_KUBECONFIG: Final = "~/.kube/config"
# client-go re-reads a token file this often, so a rotated service account token is picked up.
_PERIOD: Final = dt.timedelta(minutes=1)
_EXEC_API_VERSIONS: Final = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)
# A cluster's extension of this name is handed to its exec plugins as spec.cluster.config.
_EXEC_EXTENSION: Final = "client.authentication.k8s.io/exec"
# A token this close to its expiry is renewed first, so it does not expire on the way.
_EXPIRY_MARGIN: Final = dt.timedelta(seconds=10)

Json = dict[str, Any]


class CredentialsError(Exception):
    """No usable credentials: a missing or broken kubeconfig, an unknown context."""


@dataclass(frozen=True)
class Token:
    """A bearer token, and when it stops working (None: not known to expire)."""

    value: str
    expires: dt.datetime | None = None


class TokenSource(Protocol):
    def current(self) -> Token:
        """The token to send now, renewed first where it has expired."""
        ...


@dataclass(frozen=True)
class Credentials:
    """Who to talk to, as whom, and the namespace commands default to."""

    source: str  # `kubeconfig /home/me/.kube/config` or IN_CLUSTER
    server: str
    namespace: str  # the context's namespace, or the service account's; else "default"
    user: str | None = None  # the kubeconfig's user entry, for display and naming
    ca_path: str | None = None  # None: the system's trusted roots, as kubectl does
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tokens: TokenSource | None = field(default=None, compare=False, repr=False)

    def token(self) -> Token | None:
        """The bearer token to send now (renewed where it expires), or None without one."""
        return None if self.tokens is None else self.tokens.current()

    def authorization(self) -> str | None:
        """The `Authorization` header to send now: a bearer token, else basic auth, else None."""
        token = self.token()
        if token is not None:
            return f"Bearer {token.value}"
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return None

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS client context: the cluster's CA (or the system's roots), the client cert."""
        if self.insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            try:
                context = ssl.create_default_context(cafile=self.ca_path)
            except (OSError, ssl.SSLError) as error:
                raise CredentialsError(
                    f"cannot use the certificate authority {self.ca_path}: {_reason(error)}"
                ) from error
        if self.certificate_path:
            try:
                context.load_cert_chain(self.certificate_path, self.private_key_path)
            except (OSError, ssl.SSLError) as error:
                raise CredentialsError(
                    f"cannot use the client certificate {self.certificate_path}: {_reason(error)}"
                ) from error
        return context


def load_credentials(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Credentials:
    """The credentials the module docstring's rule picks; CredentialsError if none can be used.

    `clock` decides when a token has expired (tests pass a manual one)."""
    if kubeconfig:
        return _from_kubeconfig([str(kubeconfig)], context, clock)
    listed = [path for path in os.environ.get("KUBECONFIG", "").split(os.pathsep) if path]
    if listed:
        return _from_kubeconfig(listed, context, clock)
    if context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        in_cluster = _in_cluster(clock)
        if in_cluster is not None:
            return in_cluster
        # Not a usable pod after all (no mounted token): try the home kubeconfig.
    return _from_kubeconfig([_DEFAULT_KUBECONFIG], context, clock)


# ------------------------------------------------------------------------ in the cluster


def _in_cluster(clock: Clock) -> Credentials | None:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    token_file = SERVICE_ACCOUNT_DIR / "token"
    ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
    if not (host and port and ca_file.is_file() and _read_text(token_file).strip()):
        return None
    try:
        namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    except OSError:
        namespace = ""
    return Credentials(
        source=IN_CLUSTER,
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        namespace=namespace or "default",
        ca_path=str(ca_file),
        tokens=_TokenFile(token_file, clock),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# ------------------------------------------------------------------------ kubeconfig files


@dataclass(frozen=True)
class _Entry:
    """A named cluster, user or context, and the directory of the file that named it."""

    fields: Json
    directory: Path


@dataclass
class _Merged:
    """Kubeconfig files merged: the first file to name an entry wins, as in kubectl."""

    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str | None = None


def _from_kubeconfig(paths: list[str], context: str | None, clock: Clock) -> Credentials:
    shown = os.pathsep.join(paths)
    files = [Path(os.path.expanduser(path)) for path in paths]
    existing = [path for path in files if path.exists()]
    if not existing:
        raise CredentialsError(
            f"no kubeconfig found at {os.pathsep.join(str(p) for p in files)}; "
            "pass --kubeconfig or set KUBECONFIG"
        )
    merged = _Merged()
    for path in existing:
        _merge(merged, path)
    name = context or merged.current_context
    if name is None:
        raise CredentialsError(
            f"cannot use the kubeconfig {shown}: it sets no current-context; pass --context"
        )
    chosen = merged.contexts.get(name)
    if chosen is None:
        raise CredentialsError(f'context "{name}" not found in the kubeconfig')
    problem = _Problem(f"cannot use the kubeconfig {shown}")
    details = chosen.fields
    cluster_name = str(details.get("cluster") or "")
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise problem(f'context "{name}" names the cluster "{cluster_name}", which is not defined')
    server = str(cluster.fields.get("server") or "")
    if not server:
        raise problem(f'the cluster "{cluster_name}" has no server')
    user_name = details.get("user")
    user: _Entry | None = None
    if user_name:
        user = merged.users.get(str(user_name))
        if user is None:
            raise problem(f'context "{name}" names the user "{user_name}", which is not defined')
    insecure = bool(cluster.fields.get("insecure-skip-tls-verify"))
    ca_path = None if insecure else _pem(problem, cluster, "certificate-authority")
    credentials = Credentials(
        source=f"kubeconfig {shown}",
        server=server,
        namespace=str(details.get("namespace") or "default"),
        user=str(user_name) if user_name else None,
        ca_path=ca_path,
        insecure=insecure,
    )
    if user is None:
        return credentials
    return _with_user(credentials, user, cluster, problem, clock)


def _merge(merged: _Merged, path: Path) -> None:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CredentialsError(
            f"cannot read the kubeconfig {path}: it is not valid YAML"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"cannot read the kubeconfig {path}: {_reason(error)}") from error
    if document is None:
        return  # an empty file, as kubectl allows
    if not isinstance(document, dict):
        raise CredentialsError(f"cannot read the kubeconfig {path}: it is not a YAML mapping")
    directory = path.parent
    for key, inner, table in (
        ("clusters", "cluster", merged.clusters),
        ("users", "user", merged.users),
        ("contexts", "context", merged.contexts),
    ):
        for item in document.get(key) or []:
            if not isinstance(item, dict) or "name" not in item:
                raise CredentialsError(
                    f"cannot read the kubeconfig {path}: an entry of {key} has no name"
                )
            fields = item.get(inner) or {}
            if not isinstance(fields, dict):
                raise CredentialsError(
                    f'cannot read the kubeconfig {path}: {inner} "{item["name"]}" is not a mapping'
                )
            table.setdefault(str(item["name"]), _Entry(fields, directory))
    if merged.current_context is None and document.get("current-context"):
        merged.current_context = str(document["current-context"])


@dataclass(frozen=True)
class _Problem:
    """Builds the one-sentence CredentialsError for what is wrong in the chosen entries."""

    prefix: str

    def __call__(self, reason: str) -> CredentialsError:
        return CredentialsError(f"{self.prefix}: {reason}")


def _with_user(
    credentials: Credentials, user: _Entry, cluster: _Entry, problem: _Problem, clock: Clock
) -> Credentials:
    fields = user.fields
    who = f'the user "{credentials.user}"'
    if fields.get("auth-provider"):
        provider = (fields["auth-provider"] or {}).get("name", "")
        raise problem(
            f'{who} uses the auth-provider "{provider}", which jitgate does not support; '
            "use an exec credential plugin"
        )
    certificate = _pem(problem, user, "client-certificate")
    key = _pem(problem, user, "client-key")
    tokens: TokenSource | None = None
    if fields.get("token"):
        tokens = _FixedToken(Token(str(fields["token"])))
    elif fields.get("tokenFile"):
        token_file = _resolve(user, str(fields["tokenFile"]))
        if not _read_text(token_file).strip():
            raise problem(f"{who} reads its token from {token_file}, which is missing or empty")
        tokens = _TokenFile(token_file, clock)
    elif fields.get("exec"):
        plugin = _exec_plugin(fields["exec"], user, cluster, problem, who)
        first = plugin.run()
        # A client certificate from the plugin serves for the life of the process (TLS
        # contexts are built once); its token is renewed.
        if first.certificate is not None and first.key is not None:
            certificate, key = (
                _PRIVATE_FILES.write(first.certificate),
                _PRIVATE_FILES.write(first.key),
            )
        if first.token is not None:
            tokens = _ExecTokens(plugin, first.token, clock)
    username, password = fields.get("username"), fields.get("password")
    return dataclasses.replace(
        credentials,
        certificate_path=certificate,
        private_key_path=key,
        username=str(username) if username is not None else None,
        password=str(password) if password is not None else None,
        tokens=tokens,
    )


def _resolve(entry: _Entry, path: str) -> Path:
    return entry.directory / os.path.expanduser(path)


def _pem(problem: _Problem, entry: _Entry, key: str) -> str | None:
    """The file holding `key` (e.g. certificate-authority), or None; `-data` lands in one."""
    data = entry.fields.get(f"{key}-data")
    if data:
        try:
            decoded = base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError) as error:
            raise problem(f"its {key}-data is not base64") from error
        return _PRIVATE_FILES.write(decoded)
    path = entry.fields.get(key)
    if not path:
        return None
    resolved = _resolve(entry, str(path))
    if not resolved.is_file():
        raise problem(f"its {key} {resolved} does not exist")
    return str(resolved)


class _PrivateFiles:
    """Files only this user can read, in one directory removed when the process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directory: Path | None = None

    def write(self, content: bytes) -> str:
        with self._lock:
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="jitgate-credentials-"))
                atexit.register(shutil.rmtree, self._directory, ignore_errors=True)
            descriptor, name = tempfile.mkstemp(dir=self._directory, suffix=".pem")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        return name


_PRIVATE_FILES: Final = _PrivateFiles()


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error).rstrip(".")


# ------------------------------------------------------------------------ token sources


@dataclass(frozen=True)
class _FixedToken:
    token: Token

    def current(self) -> Token:
        return self.token


class _TokenFile:
    """A token read from a file, re-read once it is a minute old (rotated tokens)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._read_at: dt.datetime | None = None

    def current(self) -> Token:
        with self._lock:
            now = self._clock.now()
            if self._token is None or self._read_at is None or now >= self._read_at + _PERIOD:
                value = _read_text(self._path).strip()
                if not value:
                    raise CredentialsError(f"the token file {self._path} is missing or empty")
                self._token, self._read_at = Token(value), now
            return self._token


@dataclass(frozen=True)
class _Issued:
    """What one run of an exec plugin gave: a token and/or a client certificate."""

    token: Token | None
    certificate: bytes | None
    key: bytes | None


@dataclass(frozen=True)
class _ExecPlugin:
    """An `exec` credential plugin of a kubeconfig user (client.authentication.k8s.io)."""

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    interactive_mode: str  # Never, IfAvailable or Always
    install_hint: str
    cluster: Json | None  # handed to the plugin when the user asks provideClusterInfo

    def run(self) -> _Issued:
        terminal = sys.stdin is not None and sys.stdin.isatty()
        interactive = self.interactive_mode != "Never" and terminal
        if self.interactive_mode == "Always" and not interactive:
            raise self.error("needs an interactive terminal (interactiveMode Always)")
        spec: Json = {"interactive": interactive}
        if self.cluster is not None:
            spec["cluster"] = self.cluster
        request = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **dict(self.env), "KUBERNETES_EXEC_INFO": json.dumps(request)}
        try:
            # stderr stays the user's: plugins print prompts and reasons there.
            finished = subprocess.run(
                [self.command, *self.args],
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                env=env,
                check=False,
            )
        except FileNotFoundError as error:
            hint = f"; {self.install_hint.strip()}" if self.install_hint.strip() else ""
            raise self.error(f"is not installed{hint}") from error
        except OSError as error:
            raise self.error(f"cannot be run: {_reason(error)}") from error
        if finished.returncode != 0:
            raise self.error(f"failed (exit status {finished.returncode})")
        return self._issued(finished.stdout)

    def error(self, reason: str) -> CredentialsError:
        """`reason` as the one sentence saying this plugin did not give credentials."""
        return CredentialsError(f'the credential plugin "{self.command}" {reason}')

    def _issued(self, output: bytes) -> _Issued:
        try:
            answer = json.loads(output)
        except ValueError as error:
            raise self.error("printed no ExecCredential (not JSON)") from error
        if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
            raise self.error("printed no ExecCredential")
        if answer.get("apiVersion") != self.api_version:
            raise self.error(
                f"answered {answer.get('apiVersion')}, not the {self.api_version} it was asked"
            )
        status = answer.get("status") or {}
        token: Token | None = None
        if status.get("token"):
            expires = status.get("expirationTimestamp")
            try:
                token = Token(str(status["token"]), parse_time(expires) if expires else None)
            except ValueError as error:
                raise self.error(f"gave an unreadable expirationTimestamp {expires}") from error
        certificate, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(certificate) != bool(key):
            raise self.error("gave a client certificate without its key, or a key alone")
        if token is None and not certificate:
            raise self.error("gave neither a token nor a client certificate")
        return _Issued(
            token,
            str(certificate).encode() if certificate else None,
            str(key).encode() if key else None,
        )


def _exec_plugin(
    spec: Any, user: _Entry, cluster: _Entry, problem: _Problem, who: str
) -> _ExecPlugin:
    if not isinstance(spec, dict) or not spec.get("command"):
        raise problem(f"{who} has an exec entry without a command")
    api_version = str(spec.get("apiVersion") or "")
    if api_version not in _EXEC_API_VERSIONS:
        raise problem(
            f"{who} asks for the exec API version {api_version or '(none)'}; "
            f"jitgate speaks {' and '.join(_EXEC_API_VERSIONS)}"
        )
    command = str(spec["command"])
    if os.sep in command and not os.path.isabs(command):
        command = str(_resolve(user, command))  # as client-go: relative to the kubeconfig
    pairs = spec.get("env") or []
    if not all(isinstance(pair, dict) and pair.get("name") for pair in pairs):
        raise problem(f"{who} has an exec env entry without a name")
    env = tuple((str(pair["name"]), str(pair.get("value") or "")) for pair in pairs)
    return _ExecPlugin(
        command=command,
        args=tuple(str(arg) for arg in spec.get("args") or []),
        env=env,
        api_version=api_version,
        interactive_mode=str(spec.get("interactiveMode") or "IfAvailable"),
        install_hint=str(spec.get("installHint") or ""),
        cluster=_cluster_info(cluster) if spec.get("provideClusterInfo") else None,
    )


def _cluster_info(cluster: _Entry) -> Json:
    """The cluster as an ExecCredential's spec.cluster describes it."""
    fields = cluster.fields
    info: Json = {"server": fields.get("server")}
    if fields.get("certificate-authority-data"):
        info["certificate-authority-data"] = fields["certificate-authority-data"]
    elif fields.get("certificate-authority"):
        ca = _read_text(_resolve(cluster, str(fields["certificate-authority"])))
        info["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
    if fields.get("insecure-skip-tls-verify"):
        info["insecure-skip-tls-verify"] = True
    for extension in fields.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == _EXEC_EXTENSION:
            info["config"] = extension.get("extension")
    return info


class _ExecTokens:
    """The exec plugin's token, the plugin run again once the token has expired."""

    def __init__(self, plugin: _ExecPlugin, first: Token, clock: Clock) -> None:
        self._plugin = plugin
        self._clock = clock
        self._lock = threading.Lock()
        self._token = first

    def current(self) -> Token:
        with self._lock:
            expires = self._token.expires
            if expires is not None and self._clock.now() >= expires - _EXPIRY_MARGIN:
                token = self._plugin.run().token
                if token is None:
                    raise self._plugin.error("gave no token this time")
                self._token = token
            return self._token
