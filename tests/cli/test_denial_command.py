"""The `kubectl jit request …` line a webhook denial suggests is one `kubectl jit` accepts,
and the request it creates covers exactly the action that was denied."""

from __future__ import annotations

import shlex

import pytest

from jitgate.cli.kubectl_jit.main import parse_args
from jitgate.cli.kubectl_jit.request import actions_from
from jitgate.core.actions import AttemptedAction
from jitgate.core.admission.denials import REASON_PLACEHOLDER, request_command
from jitgate.core.matching import action_covers

DENIED = [
    AttemptedAction("exec", "prod", "pods", "web-0", container="app", command=("ls", "-l")),
    AttemptedAction("exec", "prod", "pods", "web-0", command=("sh",), interactive=True),
    AttemptedAction("attach", "prod", "pods", "web-0", container="app", interactive=True),
    AttemptedAction("portforward", "prod", "pods", "web-0"),
    AttemptedAction("delete", "prod", "pods", "web-0"),
    AttemptedAction("delete", "prod", "deployments.apps", "web"),
    AttemptedAction("delete", "prod", "cronjobs.batch", "nightly"),
    AttemptedAction("scale", "prod", "statefulsets.apps", "db", detail={"replicas": {}}),
    AttemptedAction("scale", "prod", "replicasets.apps", "web-5d8f"),
    AttemptedAction("unprotect", "prod", "namespaces", "prod"),
]


@pytest.mark.parametrize("attempted", DENIED, ids=lambda a: a.describe())
def test_the_suggested_command_asks_for_what_was_denied(attempted: AttemptedAction) -> None:
    line = request_command(attempted, "15m").replace(REASON_PLACEHOLDER, "INC-1: stuck")
    words = shlex.split(line)
    assert words[:2] == ["kubectl", "jit"]
    options = parse_args(words[2:]).options
    assert (options.cluster.namespace, options.duration, options.reason) == (
        "prod", "15m", "INC-1: stuck"
    )  # fmt: skip
    actions = actions_from(options)
    assert len(actions) == 1
    assert action_covers(actions[0], attempted), (line, actions[0])
