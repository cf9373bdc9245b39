"""What `--wait` and `kubectl jit wait` say on the way, the command they print once approved,
and the exit-code table `--help` and the README share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jitgate.cli.kubectl_jit.arguments import build_parser
from jitgate.cli.kubectl_jit.exits import EXIT_CODES
from jitgate.cli.kubectl_jit.waiting import progress
from jitgate.core.api import AccessRequest
from jitgate.core.next_steps import next_commands

README = Path(__file__).resolve().parents[2] / "README.md"


def request(actions: list[dict[str, Any]], **status: Any) -> AccessRequest:
    return AccessRequest.model_validate(
        {"metadata": {"name": "fix", "namespace": "prod"},
         "spec": {"actions": actions, "reason": "INC-1"}, "status": status}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("action", "lines"),
    [
        ({"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls", "-l"]},
         ["kubectl exec -n prod web-0 -c app -- ls -l"]),
        ({"verb": "exec", "names": ["web-0"]}, ["kubectl exec -it -n prod web-0 -- sh"]),
        ({"verb": "exec"}, ["kubectl exec -it -n prod POD -- sh"]),
        ({"verb": "attach", "names": ["web-0", "web-1"], "container": "app"},
         ["kubectl attach -it -n prod web-0 -c app", "kubectl attach -it -n prod web-1 -c app"]),
        ({"verb": "portforward", "names": ["web-0"]},
         ["kubectl port-forward -n prod pod/web-0 LOCAL:REMOTE"]),
        ({"verb": "delete", "resource": "deployments.apps", "names": ["web", "api"]},
         ["kubectl delete -n prod deployment/web deployment/api"]),
        ({"verb": "scale", "resource": "statefulsets.apps", "names": ["db"]},
         ["kubectl scale -n prod statefulset/db --replicas=COUNT"]),
        ({"verb": "scale", "resource": "deployments.apps", "names": ["web"], "replicas": 5},
         ["kubectl scale -n prod deployment/web --replicas=5"]),
    ],
)  # fmt: skip
def test_the_command_to_run_next_is_what_the_grant_allows(
    action: dict[str, Any], lines: list[str]
) -> None:
    assert next_commands(request([action])) == lines


@pytest.mark.parametrize(
    ("action", "lines"),
    [
        ({"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]},
         ["kubectl jit exec -n prod web-0 -c app -- ls"]),
        ({"verb": "attach", "names": ["web-0"]}, ["kubectl jit attach -it -n prod web-0"]),
        ({"verb": "portforward", "names": ["web-0"]},
         ["kubectl jit port-forward -n prod pod/web-0 LOCAL:REMOTE"]),
        ({"verb": "delete", "resource": "pods", "names": ["web-0"]},
         ["kubectl delete -n prod pod/web-0"]),
    ],
)  # fmt: skip
def test_where_sessions_are_recorded_the_command_goes_through_the_gateway(
    action: dict[str, Any], lines: list[str]
) -> None:
    assert next_commands(request([action]), recorded=True) == lines


def test_progress_says_how_many_approvals_of_how_many_and_by_whom() -> None:
    exec_web = [{"verb": "exec", "names": ["web-0"]}]
    assert progress(request(exec_web)) is None  # the operator has not seen it yet
    fresh = request(exec_web, phase="Pending", policy="production", requiredApprovals=2)
    assert progress(fresh) == (
        "Pending under AccessPolicy production: 0 of 2 approvals so far; waiting for 2 more"
    )
    approvals = [{"user": "bob", "decision": "Approve"}, {"user": "bob", "decision": "Approve"}]
    one = request(exec_web, phase="Pending", requiredApprovals=2, approvals=approvals)
    assert progress(one) == "Pending: 1 of 2 approvals so far (bob); waiting for 1 more"
    approvals.append({"user": "carol", "decision": "Approve"})
    both = request(exec_web, phase="Pending", requiredApprovals=2, approvals=approvals)
    assert progress(both) == "Pending: 2 of 2 approvals so far (bob, carol)"


def test_progress_under_several_policies_is_the_operators_count_per_policy() -> None:
    message = (
        "AccessPolicy production: 0 of 1 approval; AccessPolicy team-a: 1 of 1 approval (dave); "
        "waiting until 2026-11-21T11:00:00Z"
    )
    policies = [
        {"name": "production", "requiredApprovals": 1},
        {"name": "team-a", "requiredApprovals": 1},
    ]
    approvals = [{"user": "dave", "decision": "Approve"}]
    pending = request(
        [{"verb": "exec"}], phase="Pending", policies=policies, requiredApprovals=1,
        approvals=approvals, message=message,
    )  # fmt: skip
    # Not "1 of 1 approvals so far": production still waits for an approver of its own.
    assert progress(pending) == f"Pending under AccessPolicies production and team-a: {message}"


def test_exit_codes_are_distinct_and_the_same_in_help_and_readme() -> None:
    codes = [code for code, _ in EXIT_CODES]
    assert len(set(codes)) == len(codes)
    help_text = build_parser().format_help()
    readme = README.read_text()
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^  {code}\s+{re.escape(meaning)}$", help_text, re.M), meaning
        assert f"| {code} | {meaning} |" in readme, meaning


def test_wait_takes_a_name_and_a_timeout() -> None:
    namespace = build_parser().parse_args(["wait", "fix", "-n", "prod", "--timeout", "30s"])
    options = namespace.handler.read(namespace)
    assert (options.name, options.cluster.namespace, options.timeout.total_seconds()) == (
        "fix", "prod", 30.0
    )  # fmt: skip


def test_scale_requests_may_pin_the_replica_count() -> None:
    from jitgate.cli.kubectl_jit.request import actions_from

    namespace = build_parser().parse_args(
        ["request", "scale", "deploy/web", "--replicas", "5", "--reason", "r"]
    )
    (action,) = actions_from(namespace.handler.read(namespace))
    assert (action.verb, action.resource, action.names, action.replicas) == (
        "scale", "deployments.apps", ["web"], 5
    )  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(
            ["request", "scale", "deploy/web", "--replicas", "-1", "--reason", "r"]
        )
    assert refused.value.code == 2
