import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgate.core import shell

# Words of the kinds denials name: plain ones, and some a shell would split or expand.
_WORDS = st.lists(
    st.text(alphabet=st.sampled_from("az09_@%+=:,./- '\"$*\\\t\né"), max_size=6)
    | st.sampled_from(["kubectl", "-n", "--for", "15m", "rm", "-rf", "", "<why>"]),
    max_size=8,
)


@given(_WORDS)
def test_a_command_line_is_the_one_shlex_writes(words: list[str]) -> None:
    assert shell.join(words) == shlex.join(words)


@given(st.lists(st.text(), max_size=5))
def test_any_text_is_quoted_as_shlex_quotes_it(words: list[str]) -> None:
    assert shell.join(iter(words)) == shlex.join(words)


@pytest.mark.parametrize(
    ("words", "line"),
    [
        (["ls", "-l"], "ls -l"),
        (["echo", ""], "echo ''"),
        (["sh", "-c", "rm -rf /"], "sh -c 'rm -rf /'"),
        (["echo", "it's"], "echo 'it'\"'\"'s'"),
        (["cat", "café"], "cat 'café'"),
        ([], ""),
    ],
)
def test_words_a_shell_would_split_or_expand_are_quoted(words: list[str], line: str) -> None:
    assert shell.join(words) == line
