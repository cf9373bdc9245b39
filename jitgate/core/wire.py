"""Reading a stored object that may not validate: the model, or what is wrong with it.

Objects in the cluster can fail the models' validation: the CRD schema cannot express every
rule, and an admin can write past the webhook. Every reader (operator, webhook cache, CLI)
reads them the same way: `read(Grant, raw)` returns the `Grant`, or an `Unreadable` naming the
object and its first problem in one sentence, so each caller decides what an invalid object
means to it (deny, fail closed, skip) without parsing pydantic's errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

# The top-level fields the models describe; the API server may serve others (none today).
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


@dataclass(frozen=True)
class Unreadable:
    """A stored object that does not validate: which one, and its first problem."""

    kind: str
    namespace: str | None
    name: str | None
    uid: str | None
    problem: str  # "spec.actions.0.verb: Input should be 'exec', ..."
    part: str | None  # the top-level field the problem is in: "spec", "status", "metadata"

    def __str__(self) -> str:
        return (
            f'{self.kind.lower()} "{self.name or "?"}" is not a valid {self.kind}: {self.problem}'
        )


def first_error(error: ValidationError) -> str:
    """The first validation error as `where: what`, without pydantic's `Value error, `."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read(model: type[Model], raw: Mapping[str, Any]) -> Model | Unreadable:
    """`raw` as `model`, ignoring top-level fields the model does not describe."""
    known = {key: raw[key] for key in _TOP_LEVEL if raw.get(key) is not None}
    try:
        return model.model_validate(known)
    except ValidationError as error:
        meta = raw.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        loc = error.errors()[0]["loc"]
        return Unreadable(
            kind=model.__name__,
            namespace=_text(meta.get("namespace")),
            name=_text(meta.get("name")),
            uid=_text(meta.get("uid")),
            problem=first_error(error),
            part=str(loc[0]) if loc else None,
        )
