"""A request the policies would deny, or whose names could never match, is refused by
`kubectl jit request` at once, with what to do instead; a typo'd pod name is admitted with a
warning naming the pods that exist."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.apiserver, pytest.mark.kubectl]


def test_requests_are_checked_at_admission(jitgate_cluster: Any) -> None:
    c = jitgate_cluster
    c.create_pods("prod", "aa-checks-0", "aa-checks-1")  # sorted first: named
    request = ("request", "exec", "-n", "prod", "--reason", "INC-40: look")
    # alice may not read the policies, so the plugin cannot cut --for itself: admission says.
    too_long = c.jit("alice", *request, "checks-0", "--for", "10h")
    assert too_long.returncode != 0
    assert (
        "duration 10h is too long: access lasts at most 1h (AccessPolicy production); "
        "ask for --for 1h or less"
    ) in too_long.stderr, too_long.stderr

    with_kind = c.jit("alice", *request, "pod/checks-0")
    assert with_kind.returncode != 0
    assert (
        "names are object names without a kind: write checks-0, not pod/checks-0; "
        "the action's resource says the kind"
    ) in with_kind.stderr, with_kind.stderr

    typo = c.jit("alice", *request, "aa-checks-9", "--name", "checks-typo")
    assert typo.returncode == 0, typo.stderr
    assert (
        "Warning: no pod aa-checks-9 in namespace prod; check the name (pods there: "
    ) in typo.stderr, typo.stderr
    assert "aa-checks-0, aa-checks-1" in typo.stderr, typo.stderr
