"""Shell completion for both programs: bash, zsh and fish scripts that ask the program itself.

Each script calls `PROG __complete WORD...` (the words after the program name, the one being
typed last), and the program answers with one candidate a line, read from its own parser:
subcommands, flags, and the values of flags with a fixed set of choices. So completion never
drifts from the parser, as with cobra's `__complete`. kubectl asks the executable
`kubectl_complete-jit` the same question for `kubectl jit <TAB>` (kubectl 1.26 and later).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from jitgate.cli.errors import EXIT_OK
from jitgate.cli.options import Command

Shell = Literal["bash", "zsh", "fish"]
SHELLS: Final[tuple[Shell, ...]] = ("bash", "zsh", "fish")
COMPLETE_COMMAND: Final = "__complete"
# cobra's ShellCompDirectiveNoFileComp: kubectl offers no file names after the candidates.
_NO_FILES_DIRECTIVE: Final = ":4"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def candidates(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """What may come next: `words` are those after the program name, the last one being the
    word typed so far (empty after a space)."""
    *done, partial = list(words) or [""]
    current, pending_value = parser, None
    for word in done:
        if word == "--":
            return []  # an exec command: nothing of ours to complete
        if pending_value is not None:
            pending_value = None
            continue
        flags = _flags(current)
        if word.startswith("-"):
            action = flags.get(word.partition("=")[0])
            if action is not None and action.nargs != 0 and "=" not in word:
                pending_value = action
            continue
        current = _subcommands(current).get(word, current)
    if pending_value is not None:
        choices = pending_value.choices or ()
        options = [str(choice) for choice in choices]
    elif partial.startswith("-"):
        options = sorted(flag for flag in _flags(current) if flag.startswith("--")) + sorted(
            flag for flag in _flags(current) if not flag.startswith("--")
        )
    else:
        # Subcommands, or the values of a positional argument with fixed choices (SHELL).
        options = list(_subcommands(current)) or [
            str(choice)
            for action in current._actions
            if not action.option_strings and action.choices
            for choice in action.choices
        ]
    return [option for option in options if option.startswith(partial)]


def answer(parser: argparse.ArgumentParser, words: Sequence[str], *, kubectl: bool = False) -> str:
    """The reply to `__complete`: a candidate a line (and kubectl's directive line)."""
    lines = candidates(parser, words)
    if kubectl:
        lines.append(_NO_FILES_DIRECTIVE)
    return "".join(line + "\n" for line in lines)


def script(shell: Shell, prog: str) -> str:
    """The completion script for `prog` in `shell`, to `source` (bash, zsh) or to load with
    `| source` (fish)."""
    function = "_" + re.sub(r"[^A-Za-z0-9]", "_", prog) + "_complete"
    if shell == "bash":
        return (
            f"# bash completion for {prog}: source <({prog} completion bash)\n"
            f"{function}() {{\n"
            "    local IFS=$'\\n'\n"
            f'    COMPREPLY=($({prog} {COMPLETE_COMMAND} "${{COMP_WORDS[@]:1:COMP_CWORD}}" '
            "2>/dev/null))\n"
            "}\n"
            f"complete -o default -F {function} {prog}\n"
        )
    if shell == "zsh":
        return (
            f"#compdef {prog}\n"
            f"# zsh completion for {prog}: source <({prog} completion zsh) (after compinit)\n"
            f"{function}() {{\n"
            "    local -a candidates\n"
            f'    candidates=("${{(@f)$({prog} {COMPLETE_COMMAND} "${{(@)words[2,CURRENT]}}" '
            '2>/dev/null)}")\n'
            "    compadd -a candidates\n"
            "}\n"
            f"compdef {function} {prog}\n"
        )
    return (
        f"# fish completion for {prog}: {prog} completion fish | source\n"
        f"function {function}\n"
        "    set -l words (commandline -opc)\n"
        "    set -e words[1]\n"
        f"    {prog} {COMPLETE_COMMAND} $words (commandline -ct) 2>/dev/null\n"
        "end\n"
        f"complete -c {prog} -f -a '({function})'\n"
    )


@dataclass(frozen=True)
class CompletionOptions:
    shell: Shell
    prog: str


def _print_script(options: CompletionOptions) -> int:
    sys.stdout.write(script(options.shell, options.prog))
    return EXIT_OK


def add_completion_command(subparsers: Any, prog: str) -> None:
    """The `completion SHELL` subcommand of `prog`."""
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description=f"Print the completion script for {prog}. Load it with: "
        f"source <({prog} completion bash), source <({prog} completion zsh) (after compinit), "
        f"or {prog} completion fish | source.",
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    parser.set_defaults(
        handler=Command(lambda namespace: CompletionOptions(namespace.shell, prog), _print_script)
    )
