"""What can go wrong with the audit log, split by who has to act on it."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of every audit log error; its message is one plain sentence."""


class AuditWriteError(AuditError):
    """A record could not be made durable: the caller must not act as if it were logged."""


class AuditReadError(AuditError):
    """The log cannot be read at all: a missing directory, an unreachable database, a stray file."""


class AuditConfigError(AuditError):
    """An audit URL, key file or option that cannot be used as given."""


class AuditDataError(AuditError):
    """The log can be read but a record in it is damaged; `jitgate audit verify` explains how."""
