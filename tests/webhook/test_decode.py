"""A CONNECT's options object, read by msgspec on every exec, attach and port-forward: where
msgspec accepts it, the strict pydantic model it stands in for reads the same values (where
msgspec refuses it, the model reads it, refusing with its own message)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from jitgate.webhook.decode import _FastOptions, _Options

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=3), SCALARS)
FIELDS = [*_Options.model_fields, "apiVersion", "other"]


@given(options=st.dictionaries(st.sampled_from(FIELDS), VALUES))
@settings(max_examples=500)
def test_options_msgspec_accepts_read_as_the_model_reads_them(options: dict[str, Any]) -> None:
    try:
        fast = msgspec.convert(options, _FastOptions)
    except msgspec.ValidationError:
        return
    checked = _Options.model_validate(options)
    assert msgspec.structs.asdict(fast) == checked.model_dump()


@given(
    options=st.fixed_dictionaries(
        {"stdin": st.booleans(), "tty": st.booleans()},
        optional={
            "container": st.text(max_size=5),
            "command": st.lists(st.text(max_size=5)),
            "ports": st.lists(st.integers(min_value=0, max_value=65535)),
        },
    )
)
def test_well_formed_options_read_alike(options: dict[str, Any]) -> None:
    fast = msgspec.convert(options, _FastOptions)
    assert msgspec.structs.asdict(fast) == _Options.model_validate(options).model_dump()
