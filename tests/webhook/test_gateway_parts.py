"""The session gateway's pure parts: who the front proxy says is calling (and only through
its certificate), the marker the webhook checks, and the URLs kubectl is answered at."""

from __future__ import annotations

import datetime as dt

import pytest
from jitgate.webhook.gateway import marker, paths
from jitgate.webhook.gateway.channels import exit_code_of, offered, resize_of
from jitgate.webhook.gateway.frontproxy import (
    Caller,
    NotFromFrontProxy,
    caller_from_headers,
    check_proxy_certificate,
)
from jitgate.webhook.gateway.registry import Registry, TooManySessions
from jitgate.webhook.gateway.upstream import impersonation

from jitgate.core.clock import SYSTEM_CLOCK

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)
STREAM = marker.Stream("alice", "exec", "prod", "web-0", "app")
PROXY_CERT = {"subject": ((("commonName", "front-proxy-client"),),)}


def test_a_marker_verifies_for_its_stream_only() -> None:
    value = marker.sign(KEY, STREAM, "s1", NOW)
    extra = {marker.EXTRA_KEY: [value]}
    assert marker.check(KEY, extra, STREAM, NOW) == marker.Marked("s1")
    for other in (
        marker.Stream("mallory", "exec", "prod", "web-0", "app"),
        marker.Stream("alice", "attach", "prod", "web-0", "app"),
        marker.Stream("alice", "exec", "prod", "db-0", "app"),
        marker.Stream("alice", "exec", "prod", "web-0", "sidecar"),
    ):
        assert marker.check(KEY, extra, other, NOW) == marker.Forged(
            "a session marker whose signature does not match this stream"
        )


def test_a_marker_made_up_expired_or_unverifiable_is_forged() -> None:
    value = marker.sign(KEY, STREAM, "s1", NOW)
    later = NOW + marker.VALIDITY + dt.timedelta(seconds=1)
    assert marker.check(KEY, {marker.EXTRA_KEY: [value]}, STREAM, later) == marker.Forged(
        "an expired session marker"
    )
    assert isinstance(marker.check(b"x" * 32, {marker.EXTRA_KEY: [value]}, STREAM, NOW),
                      marker.Forged)  # fmt: skip
    assert isinstance(marker.check(None, {marker.EXTRA_KEY: [value]}, STREAM, NOW), marker.Forged)
    assert isinstance(marker.check(KEY, {marker.EXTRA_KEY: ["gateway"]}, STREAM, NOW),
                      marker.Forged)  # fmt: skip
    assert isinstance(marker.check(KEY, {marker.EXTRA_KEY: [value, value]}, STREAM, NOW),
                      marker.Forged)  # fmt: skip
    assert marker.check(KEY, {"other": ["x"]}, STREAM, NOW) is None
    assert marker.check(KEY, None, STREAM, NOW) is None


def test_a_short_session_key_is_refused(tmp_path) -> None:
    short = tmp_path / "key"
    short.write_bytes(b"short\n")
    with pytest.raises(marker.SessionKeyError, match="shorter than 32 bytes"):
        marker.load_session_key(short)


def test_only_the_front_proxys_certificate_is_believed() -> None:
    with pytest.raises(NotFromFrontProxy) as none:
        check_proxy_certificate(None, frozenset({"front-proxy-client"}))
    assert none.value.status == 401
    with pytest.raises(NotFromFrontProxy) as other:
        check_proxy_certificate(
            {"subject": ((("commonName", "mallory"),),)}, frozenset({"front-proxy-client"})
        )
    assert other.value.status == 403
    check_proxy_certificate(PROXY_CERT, frozenset({"front-proxy-client"}))
    check_proxy_certificate({"subject": ((("commonName", "x"),),)}, frozenset())  # any name


def test_the_caller_is_read_from_the_front_proxy_headers() -> None:
    caller = caller_from_headers(
        [("X-Remote-User", "alice"), ("X-Remote-Group", "developers"),
         ("x-remote-group", "system:authenticated"),
         ("X-Remote-Extra-Scopes%2fOne", "a"), ("Accept", "*/*")]
    )  # fmt: skip
    assert caller.user == "alice"
    assert caller.groups == ("developers", "system:authenticated")
    assert caller.extra == {"scopes/one": ("a",)}
    assert caller.uid is None
    with pytest.raises(NotFromFrontProxy):
        caller_from_headers([("X-Remote-Group", "developers")])


def test_the_gateway_opens_streams_as_the_whole_caller() -> None:
    """Its user, uid, groups and extras, as the API server named them to the gateway; the
    caller's own session marker is replaced by the gateway's."""
    caller = caller_from_headers(
        [("X-Remote-User", "alice"), ("X-Remote-Uid", "u-1"),
         ("X-Remote-Group", "developers"), ("X-Remote-Group", "system:authenticated"),
         ("X-Remote-Extra-Acme.example%2fteam", "payments"),
         ("X-Remote-Extra-Acme.example%2fteam", "on call"),
         ("X-Remote-Extra-Jitgate.dev%2fsession", "v1:made:up:value")]
    )  # fmt: skip
    assert caller.uid == "u-1"

    headers = impersonation(caller, "v1:signed")

    assert list(headers.items()) == [
        ("Impersonate-User", "alice"),
        ("Impersonate-Uid", "u-1"),
        ("Impersonate-Group", "developers"),  # system:authenticated is the API server's to add
        ("Impersonate-Extra-acme.example%2Fteam", "payments"),
        ("Impersonate-Extra-acme.example%2Fteam", "on call"),
        ("Impersonate-Extra-jitgate.dev%2Fsession", "v1:signed"),
    ]
    with pytest.raises(NotFromFrontProxy):
        caller_from_headers([("X-Remote-User", "alice"), ("X-Remote-Uid", "a"),
                             ("X-Remote-Uid", "b")])  # fmt: skip


def test_kubectls_paths_under_the_prefix() -> None:
    prefix = paths.prefix("prod")
    assert paths.route(prefix + "/api") == paths.Document(paths.KUBECTL_DISCOVERY["/api"])
    assert paths.route(prefix + "/api/v1/namespaces/prod/pods/web-0") == paths.PodRead(
        "prod", "web-0"
    )
    assert paths.route(prefix + "/api/v1/namespaces/prod/pods/web-0/exec") == paths.StreamTarget(
        "exec", "prod", "web-0"
    )
    # Sessions opened under one namespace's prefix (what RBAC allowed) reach no other.
    other = paths.route(prefix + "/api/v1/namespaces/kube-system/pods/etcd-0/exec")
    assert isinstance(other, paths.Refused) and other.status == 403
    assert isinstance(paths.route(prefix + "/api/v1/namespaces/prod/secrets"), paths.Refused)
    assert isinstance(paths.route(prefix + "/api/v1/namespaces/prod/pods/web-0/log"),
                      paths.Refused)  # fmt: skip
    assert paths.route("/apis/sessions.jitgate.dev/v1alpha1") == paths.Document(paths.RESOURCES)


def test_stream_protocol_details() -> None:
    assert offered("v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io",
                   ("v4.channel.k8s.io", "v5.channel.k8s.io")) == (
        "v5.channel.k8s.io", "v4.channel.k8s.io")  # fmt: skip
    assert resize_of(b'{"Width":80,"Height":24}') is not None
    assert resize_of(b"nonsense") is None
    assert exit_code_of(b'{"status":"Success"}') == 0
    assert (
        exit_code_of(
            b'{"status":"Failure","reason":"NonZeroExitCode",'
            b'"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
        )
        == 3
    )
    assert exit_code_of(b'{"status":"Failure","reason":"InternalError"}') is None


def test_sessions_are_bounded_per_user_and_in_total() -> None:
    registry = Registry(
        None,  # type: ignore[arg-type]  # slots ask nothing of the service
        SYSTEM_CLOCK,
        max_sessions=2,
        max_sessions_per_user=1,
        check_interval=1.0,
    )
    alice, bob, carol = Caller("alice"), Caller("bob"), Caller("carol")
    with registry.slot(alice):
        with pytest.raises(TooManySessions, match="alice already has 1 session open"):
            registry.slot(alice).__enter__()
        with (
            registry.slot(bob),
            pytest.raises(TooManySessions, match="at its limit of 2 sessions"),
        ):
            registry.slot(carol).__enter__()
    with registry.slot(alice):  # a closed session frees its slot
        assert len(registry) == 1
