"""`kubectl jit request …`: create an AccessRequest, and optionally wait for the decision."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from jitgate.cli.errors import EXIT_OK, CommandFailed, UsageError
from jitgate.cli.kinds import KindError, parse_targets
from jitgate.cli.kubectl_jit.approver_queue import governing
from jitgate.cli.kubectl_jit.build import (
    RequestError,
    build_request,
    connect_action,
    creation_body,
    generated_name,
    object_actions,
    random_suffix,
    request_namespace,
)
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, Me, open_session
from jitgate.cli.kubectl_jit.options import RequestOptions, WaitOptions
from jitgate.cli.kubectl_jit.review import read_policies
from jitgate.cli.kubectl_jit.waiting import wait_for_decision
from jitgate.core.api import RequestedAction, Requester
from jitgate.core.durations import format_duration, parse_duration
from jitgate.core.policy import Governing, covers_action
from jitgate.core.vocabulary import CONNECT_VERBS

_NAME_ATTEMPTS = 3


def actions_from(options: RequestOptions) -> list[RequestedAction]:
    """The requested actions, or a usage error naming what is wrong with the arguments."""
    try:
        if options.verb in CONNECT_VERBS:
            assert options.pod is not None  # the connect verbs' parsers require POD
            return [
                connect_action(options.verb, options.pod, options.container, options.exec_command)
            ]
        if options.exec_command:
            raise RequestError(f"a command after -- applies only to exec, not {options.verb}")
        targets = parse_targets(list(options.targets))
        return object_actions(options.verb, targets, options.replicas)
    except (RequestError, KindError) as error:
        raise UsageError(str(error)) from error


def _fixed_namespace(options: RequestOptions) -> str | None:
    if options.verb in CONNECT_VERBS:
        return None
    try:
        targets = parse_targets(list(options.targets))
        return request_namespace(options.verb, targets, options.cluster.namespace)
    except (RequestError, KindError) as error:
        raise UsageError(str(error)) from error


def _body(
    options: RequestOptions, name: str, namespace: str, actions: Sequence[RequestedAction]
) -> Json:
    try:
        request = build_request(
            name=name,
            namespace=namespace,
            actions=actions,
            duration=options.duration,
            reason=options.reason,
            ticket=options.ticket,
            break_glass=options.break_glass,
            max_uses=options.max_uses,
            start_at=options.start_at,
        )
    except RequestError as error:
        raise UsageError(str(error)) from error
    return creation_body(request)


def run(options: RequestOptions) -> int:
    actions = actions_from(options)
    if not options.reason.strip():
        raise UsageError("--reason must say why the access is needed")
    _body(options, "placeholder", "default", actions)  # refuse bad input before any network call
    fixed = _fixed_namespace(options)
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace = fixed or session.namespace
    me = requests.me()
    policies = _governing(requests, namespace, actions, options, me)
    options = _clamped(options, policies)
    user = None if options.name else (me.user if me else None) or session.kubeconfig_user
    for _ in range(_NAME_ATTEMPTS):
        name = options.name or generated_name(user or "user", actions[0], random_suffix())
        if requests.create(namespace, _body(options, name, namespace, actions)) is not None:
            break
        if options.name:
            raise CommandFailed(f'accessrequest "{name}" already exists in namespace "{namespace}"')
    else:
        raise CommandFailed("every generated name was taken; choose one with --name")
    print(f"accessrequest.jitgate.dev/{name} created")
    if options.break_glass:
        print(
            "Break-glass: the operator grants it at once if the policy lets you, "
            "and flags it for review."
        )
        # There is no approver to wait for: say at once whether access was given.
        return wait_for_decision(requests, namespace, name, options.timeout)
    print(f"Ask an approver to run: kubectl jit approve {name} -n {namespace}")
    if (
        policies is not None
        and me is not None
        and policies.refusing_break_glass(me.user, me.groups) is None
    ):
        print(
            "In an emergency you may break the glass instead (granted at once, flagged for "
            "review): ask again with --break-glass"
        )
    if options.wait:
        return wait_for_decision(requests, namespace, name, options.timeout)
    return EXIT_OK


def run_wait(options: WaitOptions) -> int:
    """`kubectl jit wait NAME`: the same wait as `request --wait`, for a request made before."""
    session = open_session(options.cluster)
    return wait_for_decision(
        AccessRequests(session), session.namespace, options.name, options.timeout
    )


def _governing(
    requests: AccessRequests,
    namespace: str,
    actions: Sequence[RequestedAction],
    options: RequestOptions,
    me: Me | None,
) -> Governing | None:
    """The policies that will govern the request, where the caller may read them; where the
    namespace's labels are unreadable, every policy that may govern it (by name, or by a label
    selector that cannot be checked), composed: the strictest answer. None when unreadable."""
    policies = read_policies(requests) if me is not None else None
    if me is None or not policies:
        return None
    labels = requests.namespace_labels(namespace)
    if labels is None:
        return Governing.of(
            policy
            for policy in policies
            if (namespace in policy.spec.namespaces.names or policy.spec.namespaces.selector)
            and any(covers_action(policy, a.verb, a.effective_resource) for a in actions)
        )
    asked = build_request(
        name="placeholder",
        namespace=namespace,
        actions=actions,
        duration=None,
        reason=options.reason,
        ticket=None,
        break_glass=options.break_glass,
    )
    requester = Requester(user=me.user, groups=list(me.groups))
    spec = asked.spec.model_copy(update={"requester": requester})
    return governing(asked.model_copy(update={"spec": spec}), policies, labels)


def _clamped(options: RequestOptions, policies: Governing | None) -> RequestOptions:
    """`--for` above the policies' maximum is cut to it, and said so (it would be refused)."""
    if policies is None or options.duration is None:
        return options
    limit, limit_text, policy = policies.duration_limit(break_glass=options.break_glass)
    if parse_duration(options.duration) <= limit:
        return options
    allowed = format_duration(limit)
    print(
        f"Note: --for {options.duration} is more than the {limit_text} of AccessPolicy "
        f"{policy.metadata.name}; asking for {allowed}",
        file=sys.stderr,
    )
    return dataclasses.replace(options, duration=allowed)
