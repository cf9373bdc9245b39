"""A stored AccessRequest as the state machine reads it.

Through `jitgate.core.wire`, with two allowances so one bad entry cannot stall a request:
status fields the model does not describe are ignored, and a malformed `approvals` entry
(written past the webhook) is kept, so later entries keep their index, as an entry that
never counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from jitgate.core import wire
from jitgate.core.api import AccessRequest, AccessRequestStatus, Approval

_STATUS_FIELDS = frozenset(
    (info.alias or name) for name, info in AccessRequestStatus.model_fields.items()
)
_MALFORMED = Approval(decision="Approve", comment="malformed approval entry").to_wire()


def _approval(entry: Any) -> Any:
    try:
        Approval.model_validate(entry)
    except ValidationError:
        return _MALFORMED
    return entry


def read_request(raw: Mapping[str, Any]) -> AccessRequest | wire.Unreadable:
    status = raw.get("status")
    if isinstance(status, Mapping):
        known = {key: value for key, value in status.items() if key in _STATUS_FIELDS}
        approvals = known.pop("approvals", None)
        if approvals is not None:
            known["approvals"] = (
                [_approval(entry) for entry in approvals]
                if isinstance(approvals, list)
                else approvals
            )
        raw = {**raw, "status": known}
    return wire.read(AccessRequest, raw)
