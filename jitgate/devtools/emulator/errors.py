"""The one error the emulator raises: a Kubernetes API error, served as a ``Status`` object."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Kubernetes API error; served as a ``Status`` object with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
