"""What admission answers before it knows the cluster: fail closed, and say to retry."""

from __future__ import annotations

NOT_READY = "jitgate is not ready: grant cache not synced"


class NotReady(Exception):
    """A decision needs what the caller does not know yet (the policies, before their list)."""
