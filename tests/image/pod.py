"""A rendered StatefulSet's first pod as a kubelet would run it, as a `podman run` command line.

Everything comes from the StatefulSet the chart renders: the image, command and arguments
(``$(VAR)`` expanded from the container's environment), the environment (literal values,
the downward API's ``metadata.*`` fields, Secret keys), the volumes (an emptyDir as a tmpfs of
its size limit, Secret items as files with their mode, group-owned by the pod's ``fsGroup``,
a volumeClaimTemplate as a directory owned by it), the pod's and container's securityContext
and the resource limits. Like the kubelet, it adds the service account's token, CA and
namespace at /var/run/secrets/kubernetes.io/serviceaccount and ``KUBERNETES_SERVICE_HOST`` /
``_PORT``, so jitgate finds the API server in-cluster, as it does in production. The pod
shares the host's network (the API server listens on 127.0.0.1 there).

Anything in the spec this module does not know raises :class:`UnsupportedSpec`, so a chart
change that the image tier would silently ignore fails it instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# What podman needs on machines without CAP_SYS_RESOURCE (see container/build-image.sh).
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}


class UnsupportedSpec(Exception):
    """The rendered pod uses something this emulation of the kubelet does not do."""


@dataclass(frozen=True)
class ServiceAccount:
    """What the kubelet mounts for ``automountServiceAccountToken`` and the API server's
    address it puts in the environment."""

    token: str
    ca_pem: bytes
    api_host: str
    api_port: int


def quantity(value: str) -> int:
    """A Kubernetes quantity such as ``64Mi`` in bytes."""
    match = re.fullmatch(r"(\d+)([KMG]i?|k)?", value)
    if not match:
        raise UnsupportedSpec(f"quantity {value!r}")
    return int(match.group(1)) * _UNITS.get(match.group(2) or "", 1)


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, text)


def _field(pod: Obj, path: str) -> str:
    metadata = pod["metadata"]
    if path in ("metadata.name", "metadata.namespace"):
        return str(metadata[path.removeprefix("metadata.")])
    label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    if label:
        return str(metadata["labels"][label.group(1)])
    raise UnsupportedSpec(f"fieldRef {path}")


def _security(pod_spec: Obj, container: Obj) -> tuple[list[str], int]:
    """podman flags for the merged securityContext, and the pod's fsGroup."""
    pod_context = dict(pod_spec.get("securityContext") or {})
    fs_group = int(pod_context.pop("fsGroup", 0))
    pod_context.pop("fsGroupChangePolicy", None)  # ownership is set once below either way
    merged = {**pod_context, **(container.get("securityContext") or {})}
    user, group = merged.pop("runAsUser", None), merged.pop("runAsGroup", None)
    if user is None or group is None:
        raise UnsupportedSpec("a pod without runAsUser and runAsGroup")
    flags = ["--user", f"{user}:{group}"]
    if fs_group:
        flags += ["--group-add", str(fs_group)]
    if merged.pop("runAsNonRoot", False) and int(user) == 0:
        raise UnsupportedSpec("runAsNonRoot with runAsUser 0: the kubelet refuses to start it")
    if merged.pop("readOnlyRootFilesystem", False):
        flags.append("--read-only")
    if merged.pop("allowPrivilegeEscalation", True) is False:
        flags += ["--security-opt", "no-new-privileges"]
    if merged.pop("privileged", False):
        raise UnsupportedSpec("privileged containers")
    capabilities = merged.pop("capabilities", {})
    flags += [f"--cap-drop={cap}" for cap in capabilities.pop("drop", [])]
    flags += [f"--cap-add={cap}" for cap in capabilities.pop("add", [])]
    if capabilities:
        raise UnsupportedSpec(f"capabilities {capabilities}")
    seccomp = merged.pop("seccompProfile", {"type": "RuntimeDefault"})
    if seccomp != {"type": "RuntimeDefault"}:  # podman's default profile
        raise UnsupportedSpec(f"seccompProfile {seccomp}")
    if merged:
        raise UnsupportedSpec(f"securityContext fields {sorted(merged)}")
    return flags, fs_group


def _write_files(directory: Path, files: Mapping[str, bytes], mode: int, group: int) -> None:
    """A Secret volume's files as the kubelet writes them: root-owned, group ``fsGroup``."""
    directory.mkdir(parents=True)
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        os.chown(path, 0, group)
        path.chmod(mode)
    os.chown(directory, 0, group)
    directory.chmod(0o755)


def podman_run_args(
    statefulset: Obj,
    *,
    host_dir: Path,
    read_secret: Callable[[str, str], Mapping[str, bytes]],
    service_account: ServiceAccount,
    container_name: str,
    read_config_map: Callable[[str, str], Mapping[str, bytes]] | None = None,
) -> list[str]:
    """The arguments after ``podman run`` that run pod 0 of ``statefulset``.

    ``read_secret(namespace, name)`` gives a Secret's decoded data and ``read_config_map`` a
    ConfigMap's (the kubelet reads both from the API server); files for volumes are written
    under ``host_dir``.
    """
    template = statefulset["spec"]["template"]
    spec: Obj = template["spec"]
    if spec.get("initContainers") or len(spec["containers"]) != 1:
        raise UnsupportedSpec("only pods with exactly one container and no init containers")
    (container,) = spec["containers"]
    namespace = statefulset["metadata"]["namespace"]
    pod_name = f"{statefulset['metadata']['name']}-0"
    pod = {
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": {
                **template["metadata"].get("labels", {}),
                "apps.kubernetes.io/pod-index": "0",
                "statefulset.kubernetes.io/pod-name": pod_name,
            },
        }
    }

    env: dict[str, str] = {
        "KUBERNETES_SERVICE_HOST": service_account.api_host,
        "KUBERNETES_SERVICE_PORT": str(service_account.api_port),
    }
    for entry in container.get("env", []):
        source = entry.get("valueFrom")
        if source is None:
            env[entry["name"]] = expand(entry.get("value", ""), env)
        elif "fieldRef" in source:
            env[entry["name"]] = _field(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[entry["name"]] = read_secret(namespace, ref["name"])[ref["key"]].decode()
        else:
            raise UnsupportedSpec(f"env source {sorted(source)}")

    security, fs_group = _security(spec, container)
    args = ["--rm", "--name", container_name, "--hostname", pod_name, "--network", "host"]
    args += ["--pull", "never", *ULIMITS, *security]
    limits = (container.get("resources") or {}).get("limits") or {}
    if "memory" in limits:
        args += ["--memory", str(quantity(limits["memory"]))]
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        args += ["--cpus", str(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))]

    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in statefulset["spec"].get("volumeClaimTemplates", [])}
    for mount in container.get("volumeMounts", []):
        name, target = mount["name"], mount["mountPath"]
        volume = volumes.get(name, {})
        if name in claims:
            directory = host_dir / "claims" / name
            directory.mkdir(parents=True)
            os.chown(directory, 0, fs_group)
            directory.chmod(0o2775)  # what fsGroup makes of a fresh volume
            args += ["--volume", f"{directory}:{target}:rw"]
        elif "emptyDir" in volume:
            size = quantity(volume["emptyDir"].get("sizeLimit", "64Mi"))
            args += ["--tmpfs", f"{target}:rw,size={size},mode=1777"]
        elif "secret" in volume or ("configMap" in volume and read_config_map is not None):
            if "secret" in volume:
                source = volume["secret"]
                data = read_secret(namespace, source["secretName"])
                directory = host_dir / "secrets" / name
            else:
                assert read_config_map is not None
                source = volume["configMap"]
                data = read_config_map(namespace, source["name"])
                directory = host_dir / "config-maps" / name
            items = source.get("items") or [{"key": key, "path": key} for key in data]
            files = {item["path"]: data[item["key"]] for item in items}
            _write_files(directory, files, int(source.get("defaultMode", 0o644)), fs_group)
            # Secret and ConfigMap volumes are read-only, as a kubelet mounts them.
            args += ["--volume", f"{directory}:{target}:ro"]
        else:
            raise UnsupportedSpec(f"volume {name}: {sorted(volume)}")
        if mount.get("subPath"):
            raise UnsupportedSpec("subPath mounts")

    if spec.get("automountServiceAccountToken", True):
        files = {
            "token": service_account.token.encode(),
            "ca.crt": service_account.ca_pem,
            "namespace": namespace.encode(),
        }
        directory = host_dir / "secrets" / "kube-api-access"
        _write_files(directory, files, 0o644, fs_group)
        args += ["--volume", f"{directory}:{SERVICE_ACCOUNT_DIR}:ro"]

    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    if container.get("command"):
        args += ["--entrypoint", json.dumps([expand(word, env) for word in container["command"]])]
    args.append(container["image"])
    args += [expand(word, env) for word in container.get("args", [])]
    return args


def probe_url(container: Obj, probe: str, host: str = "127.0.0.1") -> str:
    """The URL a kubelet's httpGet ``probe`` (e.g. ``readinessProbe``) asks, on ``host``."""
    get = container[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    return f"{get.get('scheme', 'HTTP').lower()}://{host}:{port}{get['path']}"
