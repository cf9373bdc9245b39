"""Who is calling, and the kubeconfig that lets each user call: a user's bearer token is its name.

The emulator authenticates nobody; tests and the demo tell users apart by their token (or by
``Impersonate-User``), as the real API server would after authentication.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kmock


def request_user(request: kmock.Request) -> str | None:
    """Who sent a request: the impersonated user, else the bearer token (the user's name)."""
    headers = {key.lower(): value for key, value in request.headers.items()}
    if "impersonate-user" in headers:
        return headers["impersonate-user"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def kubeconfig_document(server: str, users: Sequence[str], namespace: str) -> dict[str, Any]:
    """A kubeconfig with one context per user, named after it; the first one is current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": n, "user": {"token": n}} for n in users],
        "contexts": [
            {"name": n, "context": {"cluster": "emulator", "user": n, "namespace": namespace}}
            for n in users
        ],
        "current-context": users[0],
        "preferences": {},
    }
