"""The API server refuses a CRD whose schema says anything about `metadata` but its type."""

from __future__ import annotations

import yaml

from jitgate.core.crds import render_all


def test_crd_schemas_leave_metadata_to_the_api_server() -> None:
    for name, text in render_all().items():
        crd = yaml.safe_load(text)
        for version in crd["spec"]["versions"]:
            metadata = version["schema"]["openAPIV3Schema"]["properties"]["metadata"]
            assert metadata == {"type": "object"}, name
