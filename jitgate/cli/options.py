"""Parsing command lines into typed options.

Both programs parse with `Parser` (usage errors are one sentence and exit code 2; no prefix
matching of long flags; a single-valued flag given twice is an error, not "the last one wins")
and turn the `argparse.Namespace` into a frozen dataclass right
away with `options_from`: command code reads typed fields, never namespace attributes.
`add_flag` makes a flag default to its `JITGATE_<FLAG>` environment variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypeVar

from jitgate.cli.errors import EXIT_USAGE

Options = TypeVar("Options")

# Where the parse keeps the single-valued flags given so far: dest -> (flags, value).
_GIVEN = "_single_valued_flags_given"


def _given(namespace: argparse.Namespace) -> dict[str, tuple[str, Any]]:
    given: dict[str, tuple[str, Any]] = vars(namespace).setdefault(_GIVEN, {})
    return given


def _twice(flags: str, first: Any, second: Any) -> str:
    return f"{flags} was given twice ({first!r} and {second!r}); give it once"


class _StoreOnce(argparse._StoreAction):
    """`store`, refusing a second value: `--audit A --audit B` must not quietly mean B."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.option_strings:
            given = _given(namespace)
            if self.dest in given:
                raise argparse.ArgumentError(None, _twice(*given[self.dest], values))
            given[self.dest] = ("/".join(self.option_strings), values)
        super().__call__(parser, namespace, values, option_string)


class _StrictSubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose flags also count the ones given before the subcommand
    (`kubectl jit -n a list -n b`): argparse parses them into a fresh namespace."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        before = dict(vars(namespace).get(_GIVEN, {}))
        super().__call__(parser, namespace, values, option_string)
        after = _given(namespace)
        for dest in before.keys() & after.keys():
            if before[dest] is not after[dest]:
                flags, first = before[dest]
                raise argparse.ArgumentError(None, _twice(flags, first, after[dest][1]))
        setattr(namespace, _GIVEN, {**before, **after})


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one plain sentence and exit code 2.

    `allow_abbrev` is off: `--out` must not quietly mean `--output`, and a flag added later
    must not change what an existing command line means. A single-valued flag given twice is
    refused (repeatable flags say so with `action="append"`), before or after a subcommand.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        self.register("action", "parsers", _StrictSubParsers)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}.\n")


def options_from(kind: type[Options], namespace: argparse.Namespace, **given: Any) -> Options:
    """The dataclass `kind`, each field read from the namespace attribute of its name unless
    `given` names it: repeatable flags' lists become tuples, a field whose type is itself a
    dataclass is read the same way, and a field the parser does not define keeps its default."""
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):  # type: ignore[arg-type]
        if field.name in given:
            values[field.name] = given[field.name]
        elif dataclasses.is_dataclass(hints[field.name]):
            values[field.name] = options_from(hints[field.name], namespace)
        elif hasattr(namespace, field.name):
            value = getattr(namespace, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return kind(**values)


def env_name(flag: str) -> str:
    """`--tls-cert` is read from `JITGATE_TLS_CERT`."""
    return "JITGATE_" + flag.lstrip("-").replace("-", "_").upper()


def add_flag(parser: argparse._ActionsContainer, flag: str, **kwargs: Any) -> None:
    """Add `flag`, defaulting to its environment variable, and say so in `--help`."""
    variable = env_name(flag)
    from_env = os.environ.get(variable)
    action = kwargs.get("action")
    if from_env is not None:
        if action == "store_true":
            kwargs["default"] = from_env.lower() in {"1", "true", "yes", "on"}
        elif action == "append":
            kwargs["default"] = [part for part in from_env.split(",") if part]
        else:
            kwargs["default"] = from_env
        kwargs.pop("required", None)
    help_text = kwargs.get("help", "")
    kwargs["help"] = f"{help_text} [env: {variable}]".strip()
    parser.add_argument(flag, **kwargs)


@dataclasses.dataclass(frozen=True)
class Command(Generic[Options]):
    """A parsed subcommand: how its typed options are read from the namespace, and what
    runs them. Parsers set one as their `handler` default."""

    read: Callable[[argparse.Namespace], Options]
    run: Callable[[Options], int]

    def __call__(self, namespace: argparse.Namespace) -> int:
        return self.run(self.read(namespace))


def command(kind: type[Options], run: Callable[[Options], int]) -> Command[Options]:
    """The command whose options are the dataclass `kind`, read with `options_from`."""
    return Command(lambda namespace: options_from(kind, namespace), run)
