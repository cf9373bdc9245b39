"""`kubectl jit` argument parsing, KIND mapping and request building, without a cluster."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgate.cli.kinds import KindError, Target, parse_targets, resource_for
from jitgate.cli.kubectl_jit.build import (
    RequestError,
    approval_patch,
    build_request,
    connect_action,
    creation_body,
    generated_name,
    object_actions,
    request_namespace,
    user_slug,
)
from jitgate.cli.kubectl_jit.main import parse_args
from jitgate.cli.kubectl_jit.options import Cluster
from jitgate.core.api import RequestedAction


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("pod", "pods"), ("po", "pods"), ("pods", "pods"), ("Pod", "pods"),
        ("deployment", "deployments.apps"), ("deploy", "deployments.apps"),
        ("deployments", "deployments.apps"), ("deployment.apps", "deployments.apps"),
        ("deployments.apps", "deployments.apps"), ("Deployment", "deployments.apps"),
        ("sts", "statefulsets.apps"), ("statefulset", "statefulsets.apps"),
        ("statefulsets", "statefulsets.apps"), ("rs", "replicasets.apps"),
        ("replicaset", "replicasets.apps"), ("replicasets", "replicasets.apps"),
        ("ds", "daemonsets.apps"), ("svc", "services"), ("cj", "cronjobs.batch"),
        ("job", "jobs.batch"), ("pvc", "persistentvolumeclaims"),
        ("widgets.example.com", "widgets.example.com"),
    ],
)  # fmt: skip
def test_kinds_map_to_group_qualified_plurals(kind: str, resource: str) -> None:
    assert resource_for(kind) == resource


@pytest.mark.parametrize("kind", ["gizmo", "", "deploy/ments", "Widgets.Example.com!"])
def test_unknown_kinds_are_refused_with_the_known_ones_listed(kind: str) -> None:
    with pytest.raises(KindError, match=r"unknown kind .*; use one of pod, deployment, "):
        resource_for(kind)


def test_targets_as_kind_slash_name_or_kind_then_names() -> None:
    assert parse_targets(["deploy/web", "po/web-0"]) == [
        Target("deployments.apps", "web"),
        Target("pods", "web-0"),
    ]
    assert parse_targets(["sts", "db", "cache"]) == [
        Target("statefulsets.apps", "db"),
        Target("statefulsets.apps", "cache"),
    ]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "name what to act on"),
        (["deploy"], '"deploy" needs a name'),
        (["deploy", "web", "pod/x"], "not both"),
        (["deploy/"], "must not be empty"),
        (["/web"], "is not KIND/NAME"),
        (["deploy/web/x"], "is not KIND/NAME"),
    ],
)
def test_bad_targets(words: list[str], message: str) -> None:
    with pytest.raises(KindError, match=message):
        parse_targets(words)


# ---------------------------------------------------------------------------- parsing
def options(argv: list[str]) -> Any:
    """The typed options `kubectl jit ARGV` runs its command with."""
    return parse_args(argv).options


def test_exec_with_a_command_and_flags_anywhere() -> None:
    args = options(
        ["-n", "prod", "request", "exec", "web-0", "-c", "app", "--for", "15m",
         "--reason", "INC-1: stuck", "--context", "alice", "--", "sh", "-c", "ls -n /"]
    )  # fmt: skip
    assert args.cluster == Cluster(kubeconfig=None, context="alice", namespace="prod")
    assert (args.verb, args.pod, args.container, args.duration) == ("exec", "web-0", "app", "15m")
    assert args.exec_command == ("sh", "-c", "ls -n /")
    assert (args.wait, args.timeout) == (False, dt.timedelta(minutes=10))
    later = options(["request", "attach", "web-0", "--reason", "r", "-n", "prod"])
    assert (later.cluster.namespace, later.exec_command) == ("prod", None)


def test_port_forward_is_an_alias_and_wait_takes_a_timeout() -> None:
    args = options(
        ["request", "port-forward", "web-0", "--reason", "r", "--wait", "--timeout", "90s"]
    )
    assert (args.verb, args.pod, args.container) == ("portforward", "web-0", None)
    assert args.timeout == dt.timedelta(seconds=90)


def test_delete_and_scale_take_targets() -> None:
    args = options(["request", "delete", "deploy/web", "pod/a", "--reason", "r"])
    assert args.targets == ("deploy/web", "pod/a")
    scale = options(["request", "scale", "sts", "db", "--reason", "r", "--break-glass"])
    assert (scale.targets, scale.break_glass) == (("sts", "db"), True)


def test_list_show_and_decision_flags() -> None:
    listing = options(["list", "-A", "--pending", "-o", "wide"])
    assert (listing.all_namespaces, listing.pending, listing.output) == (True, True, "wide")
    show = options(["show", "fix", "-o", "yaml", "--kubeconfig", "/kc"])
    assert (show.name, show.output, show.cluster.kubeconfig) == ("fix", "yaml", "/kc")
    approve = options(["approve", "fix", "-m", "ok", "-y"])
    assert (approve.name, approve.message, approve.yes) == ("fix", "ok", True)
    assert approve.decision == "Approve"
    deny = options(["deny", "fix", "--message", "no"])
    assert (deny.message, deny.yes, deny.decision) == ("no", False, "Deny")
    review = options(["review", "sev1", "-m", "justified", "--yes", "-n", "prod"])
    assert (review.name, review.message, review.yes, review.cluster.namespace) == (
        "sev1", "justified", True, "prod"
    )  # fmt: skip


def test_uses_and_a_scheduled_start() -> None:
    args = options(
        ["request", "exec", "web-0", "--reason", "r", "--max-uses", "1",
         "--start-at", "2026-11-21T23:00:00+01:00"]
    )  # fmt: skip
    assert args.max_uses == 1
    assert args.start_at == dt.datetime(2026, 11, 21, 22, 0, tzinfo=dt.UTC)
    relative = options(["request", "exec", "web-0", "--reason", "r", "--start-at", "+2h"])
    ahead = relative.start_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=1, minutes=59) < ahead <= dt.timedelta(hours=2)
    request = build_request(
        name="x", namespace="prod", actions=[RequestedAction(verb="exec", names=["web-0"])],
        duration=None, reason="r", ticket=None, break_glass=False, max_uses=3,
        start_at=args.start_at,
    )  # fmt: skip
    spec = creation_body(request)["spec"]
    assert (spec["maxUses"], spec["startAt"]) == (3, "2026-11-21T22:00:00Z")


def test_extend_names_the_request_and_how_much_longer() -> None:
    args = options(["extend", "fix", "--by", "15m", "--reason", "more", "--wait", "-n", "prod"])
    assert (args.name, args.by, args.reason, args.wait) == ("fix", "15m", "more", True)
    assert args.cluster.namespace == "prod"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["request", "exec", "web-0", "--reason", "r", "--max-uses", "0"], "use 1 to 1000"),
        (["request", "exec", "web-0", "--reason", "r", "--start-at", "tonight"], "RFC 3339"),
        (["request", "exec", "web-0", "--reason", "r", "--start-at", "+soon"], "Go duration"),
        (["extend", "fix", "--reason", "r"], "required: --by"),
        (["extend", "fix", "--by", "5m", "--reason", "r", "--timeout", "1m"], "only with --wait"),
        (["request", "exec", "web-0", "--reason", "r", "--for", "15"], "is not a Go duration"),
        (["request", "exec", "web-0", "--reason", "r", "--for", "0s"], "is zero"),
        (
            ["request", "exec", "web-0", "--reason", "r", "--timeout", "5m"],
            "only with --wait (or --break-glass",
        ),
        (["request", "delete", "pod/x", "--reason", "r", "--", "ls"], "only to `kubectl jit"),
        (["request", "exec", "web-0", "--reason", "r", "--"], "name the command to run"),
        (["request", "portforward", "web-0", "-c", "app", "--reason", "r"], "unrecognized"),
        (["deny", "fix"], "required: -m/--message"),
        (["list", "-o", "table"], "invalid choice"),
        (["request"], "required: ACTION"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: ") and message in error
    assert error.count("\n") == 1


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([])
    assert exit_.value.code == 2
    assert "request" in capsys.readouterr().err


# --------------------------------------------------------------------------- building
def test_connect_actions() -> None:
    action = connect_action("exec", "web-0", "app", ["sh"])
    assert action.to_wire() == {
        "verb": "exec", "resource": "pods", "names": ["web-0"], "container": "app",
        "command": ["sh"],
    }  # fmt: skip
    assert connect_action("attach", "web-0", None, None).command is None
    with pytest.raises(RequestError, match="container applies only to exec and attach"):
        connect_action("portforward", "web-0", "app", None)
    with pytest.raises(RequestError, match="command after -- applies only to exec"):
        connect_action("attach", "web-0", None, ["sh"])


def test_object_actions_group_names_by_resource() -> None:
    actions = object_actions(
        "delete", [Target("pods", "a"), Target("deployments.apps", "web"), Target("pods", "b")]
    )
    assert [a.to_wire() for a in actions] == [
        {"verb": "delete", "resource": "pods", "names": ["a", "b"]},
        {"verb": "delete", "resource": "deployments.apps", "names": ["web"]},
    ]
    with pytest.raises(RequestError, match="scale applies to deployments"):
        object_actions("scale", [Target("pods", "web-0")])


def test_the_request_body_has_no_requester_and_no_status() -> None:
    request = build_request(
        name="fix-web-0", namespace="prod", actions=[connect_action("exec", "web-0", None, None)],
        duration="15m", reason="INC-1: stuck", ticket=None, break_glass=False,
    )  # fmt: skip
    assert creation_body(request) == {
        "apiVersion": "jitgate.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "fix-web-0", "namespace": "prod"},
        "spec": {
            "actions": [{"verb": "exec", "resource": "pods", "names": ["web-0"]}],
            "duration": "15m",
            "reason": "INC-1: stuck",
            "breakGlass": False,
        },
    }


def test_a_blank_reason_is_refused() -> None:
    with pytest.raises(RequestError, match="reason"):
        build_request(
            name="x", namespace="prod", actions=[connect_action("exec", "web-0", None, None)],
            duration=None, reason="   ", ticket=None, break_glass=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("user", "slug"),
    [
        ("alice", "alice"), ("Alice@Example.com", "alice"),
        ("system:serviceaccount:ci:deployer", "deployer"), ("o'brien", "o-brien"),
        ("@@@", "user"),
    ],
)  # fmt: skip
def test_user_slugs(user: str, slug: str) -> None:
    assert user_slug(user) == slug


def test_generated_names_are_readable() -> None:
    exec_ = RequestedAction(verb="exec", names=["web-0"])
    assert generated_name("alice", exec_, "x7k2") == "alice-exec-web-0-x7k2"
    delete_any = RequestedAction(verb="delete", resource="deployments.apps")
    assert generated_name("bob@corp", delete_any, "b9zz") == "bob-delete-deployments-b9zz"


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@given(
    user=st.text(min_size=1, max_size=300),
    target=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=253),
    suffix=st.text(alphabet="bcdfghjklmnpqrstvwxz2456789", min_size=4, max_size=4),
)
def test_generated_names_are_always_dns_labels(user: str, target: str, suffix: str) -> None:
    name = generated_name(user, RequestedAction(verb="exec", names=[target]), suffix)
    assert len(name) <= 63
    assert _DNS_LABEL.fullmatch(name), name
    assert name.endswith("-" + suffix)


# --------------------------------------------------------------------- approval patches
def test_an_approval_creates_the_missing_status_and_list_guarded_by_resource_version() -> None:
    entry = {"decision": "Approve", "comment": "ok"}
    raw = {"metadata": {"name": "x", "resourceVersion": "42"}, "spec": {}}
    assert approval_patch(raw, entry) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/status", "value": {}},
        {"op": "add", "path": "/status/approvals", "value": []},
        {"op": "add", "path": "/status/approvals/-", "value": entry},
    ]
    pending = {**raw, "status": {"phase": "Pending"}}
    assert approval_patch(pending, entry) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/status/approvals", "value": []},
        {"op": "add", "path": "/status/approvals/-", "value": entry},
    ]


def test_an_approval_is_appended_to_an_existing_list() -> None:
    raw = {"metadata": {"resourceVersion": "42"}, "status": {"approvals": [{"user": "bob"}]}}
    assert approval_patch(raw, {"decision": "Deny"}) == [
        {"op": "add", "path": "/status/approvals/-", "value": {"decision": "Deny"}}
    ]


def test_unprotect_names_one_namespace_and_is_asked_for_in_it() -> None:
    options = parse_args(["request", "unprotect", "ns/payments", "--reason", "INC-9"]).options
    (action,) = object_actions(options.verb, parse_targets(list(options.targets)))
    assert (action.verb, action.resource, action.names) == ("unprotect", "namespaces", ["payments"])
    target = [Target("namespaces", "payments")]
    assert request_namespace("unprotect", target, None) == "payments"
    assert request_namespace("unprotect", target, "payments") == "payments"
    assert request_namespace("delete", [Target("pods", "web-0")], "prod") is None
    with pytest.raises(RequestError, match="asked for in namespace payments, not prod"):
        request_namespace("unprotect", target, "prod")
    for wrong in ([Target("pods", "web-0")], target * 2):
        with pytest.raises(RequestError, match="unprotect applies to one namespace"):
            object_actions("unprotect", wrong)
