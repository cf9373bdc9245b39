"""The core tier's builders: AccessPolicy and Grant models from `support.objects`."""

from collections.abc import Callable

import pytest
from support import objects

from jitgate.core.api import AccessPolicy, Grant


@pytest.fixture
def policy_factory() -> Callable[..., AccessPolicy]:
    return objects.policy_model


@pytest.fixture
def grant_factory() -> Callable[..., Grant]:
    return objects.grant_model
