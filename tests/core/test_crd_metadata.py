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


def test_printer_columns_show_the_target_and_never_an_invalid_expiry() -> None:
    for name in ("jitgate.dev_accessrequests.yaml", "jitgate.dev_grants.yaml"):
        crd = yaml.safe_load(render_all()[name])
        columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
        # kubectl prints a future date as <invalid>: a live grant's end is a plain timestamp.
        assert columns["Expires"]["type"] == "string", name
        assert columns["Actions"]["jsonPath"] == ".status.actions", name
