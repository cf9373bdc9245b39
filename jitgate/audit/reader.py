"""What the audit commands need from a stored log, whichever sink wrote it."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from jitgate.audit.errors import AuditDataError
from jitgate.audit.model import AuditRecord
from jitgate.audit.pruning import Anchor
from jitgate.audit.query import Selection
from jitgate.audit.verify import Item, Witness


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored (`data`, exactly what was hashed) and where it was found."""

    where: str
    data: Mapping[str, Any]

    @functools.cached_property
    def record(self) -> AuditRecord:
        try:
            return AuditRecord.from_stored(self.data)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(map(str, problem["loc"])) or "record"
            raise AuditDataError(
                f"the record at {self.where} is damaged ({field}: {problem['msg'].lower()}); "
                "run `jitgate audit verify`"
            ) from error

    @property
    def order(self) -> tuple[str, str, int]:
        return (str(self.data.get("time")), str(self.data.get("writer")), _seq(self.data))


def _seq(data: Mapping[str, Any]) -> int:
    seq = data.get("seq")
    return seq if type(seq) is int else 0


class Follower(Protocol):
    def poll(self) -> list[StoredRecord]:
        """Records stored since the last poll (or since the follower was made)."""
        ...


class LogReader(Protocol):
    description: str

    def writers(self) -> list[str]: ...

    def chain(self, writer: str) -> Iterator[Item]:
        """Everything stored for `writer` in storage order, for verification."""
        ...

    def witnesses(self, writer: str) -> tuple[list[Witness], list[str]]:
        """Independent records of the writer's head, and notes about unusable ones."""
        ...

    def is_live(self, writer: str) -> bool: ...

    def checkpoint(self, writer: str) -> bytes | None:
        """The writer's last signed checkpoint (a C2SP signed note), None if it has none."""
        ...

    def checkpoint_history(self, writer: str) -> list[bytes]:
        """The writer's checkpoint history (`tlog.CheckpointLink` lines), oldest first."""
        ...

    def pruning_records(self) -> list[Mapping[str, Any]]:
        """Pruning records that account for other writers' records (`pruning`); a file
        writer's own are in its chain, where `verify` finds them."""
        ...

    def pruned_prefixes(self, writer: str) -> list[Anchor]:
        """Where `writer`'s log may start after pruning, with the pruned prefix's tree
        state, as kept beside the log (a file writer's PRUNED) so the public check knows
        it before reading the records. Not trusted: the chain's own pruning records
        account for where it starts, and the signed root judges the tree."""
        ...

    def records(self, selection: Selection) -> Iterator[StoredRecord]:
        """Selected records in time order across writers; AuditDataError on a damaged one."""
        ...

    def latest(self, selection: Selection, count: int) -> list[StoredRecord]: ...

    def follow(self, selection: Selection) -> Follower: ...

    def close(self) -> None: ...
