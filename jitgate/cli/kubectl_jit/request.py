"""`kubectl jit request …`: create an AccessRequest, and optionally wait for the decision."""

from __future__ import annotations

from collections.abc import Sequence

from jitgate.cli.errors import EXIT_OK, CommandFailed, UsageError
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
from jitgate.cli.kubectl_jit.cluster import AccessRequests, Json, open_session
from jitgate.cli.kubectl_jit.kinds import KindError, parse_targets
from jitgate.cli.kubectl_jit.options import RequestOptions, WaitOptions
from jitgate.cli.kubectl_jit.waiting import wait_for_decision
from jitgate.core.api import RequestedAction
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
        return object_actions(options.verb, parse_targets(list(options.targets)))
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
    user = None if options.name else requests.whoami() or session.kubeconfig_user or "user"
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
    else:
        print(f"Ask an approver to run: kubectl jit approve {name} -n {namespace}")
    if options.wait:
        return wait_for_decision(requests, namespace, name, options.timeout)
    return EXIT_OK


def run_wait(options: WaitOptions) -> int:
    """`kubectl jit wait NAME`: the same wait as `request --wait`, for a request made before."""
    session = open_session(options.cluster)
    return wait_for_decision(
        AccessRequests(session), session.namespace, options.name, options.timeout
    )
