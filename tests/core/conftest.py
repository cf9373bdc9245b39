import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from support.clocks import NOW

from jitgate.core.api import AccessPolicy, Grant


def make_policy(name: str = "production", **spec: Any) -> AccessPolicy:
    base: dict[str, Any] = {
        "namespaces": {"names": ["prod"]},
        "actions": ["exec", "attach", "portforward", "delete", "scale"],
        "resources": ["pods", "deployments.apps"],
        "approvers": {"groups": ["sre"]},
    }
    base.update(spec)
    return AccessPolicy.model_validate({"metadata": {"name": name}, "spec": base})


def make_grant(
    *,
    user: str = "alice",
    actions: list[dict[str, Any]] | None = None,
    not_before: dt.datetime = NOW,
    expires_at: dt.datetime = NOW + dt.timedelta(minutes=15),
    name: str = "fix-web-0-x7k2",
) -> Grant:
    return Grant.model_validate(
        {
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {
                "user": user,
                "actions": actions or [{"verb": "exec", "names": ["web-0"]}],
                "notBefore": not_before,
                "expiresAt": expires_at,
                "accessRequest": {"name": "fix-web-0", "uid": "u-1"},
                "policy": "production",
            },
        }
    )


@pytest.fixture
def policy_factory() -> Callable[..., AccessPolicy]:
    return make_policy


@pytest.fixture
def grant_factory() -> Callable[..., Grant]:
    return make_grant
