"""Command lines as a POSIX shell reads them, for the commands a denial tells its user to run.

`join` is `shlex.join`, made for the decision path: a denial's message names its command in
up to four command lines (~20 words), and `shlex.join` quotes word by word (a regex search
and two calls each, ~5 us a denial). Words that need no quoting, nearly all of them, are
checked in one search over the lot and joined as they are; any other line is `shlex.join`'s.
tests/core/test_shell.py checks that both give the same line for any words.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

# The characters shlex.quote leaves unquoted (CPython's `shlex._find_unsafe`, the same pattern).
_UNSAFE = re.compile(r"[^\w@%+=:,./-]", re.ASCII)


def join(words: Iterable[str]) -> str:
    """`shlex.join(words)`: each word quoted where a shell would split or expand it."""
    words = tuple(words)
    if all(words) and _UNSAFE.search("".join(words)) is None:
        return " ".join(words)
    return shlex.join(words)
