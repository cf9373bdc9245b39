"""`kubectl jit extend NAME --by 15m --reason WHY`: ask to continue a live grant without a gap.

The new AccessRequest names the earlier one (`spec.extends`) and asks for exactly its actions;
its duration is how much longer. The webhook refuses it at creation when the earlier request
is not the caller's, not approved with a live grant, or when the total would pass the policy's
limit from the first grant's start; approvers then decide it like any request (the policy may
set a different bar for extensions: `extensions.requiredApprovals`).
"""

from __future__ import annotations

from jitgate.cli.errors import EXIT_OK, CommandFailed, UsageError
from jitgate.cli.kubectl_jit.build import (
    RequestError,
    build_request,
    creation_body,
    parse_request,
    random_suffix,
)
from jitgate.cli.kubectl_jit.cluster import AccessRequests, open_session
from jitgate.cli.kubectl_jit.options import ExtendOptions
from jitgate.cli.kubectl_jit.waiting import wait_for_decision

_NAME_ATTEMPTS = 3
_MAX_NAME = 63


def extension_name(earlier: str, suffix: str) -> str:
    """`fix-web-0-ext-x7k2`: the earlier request's name, cut to leave room for the suffix."""
    tail = f"-ext-{suffix}"
    return earlier[: _MAX_NAME - len(tail)].rstrip("-.") + tail


def run(options: ExtendOptions) -> int:
    if not options.reason.strip():
        raise UsageError("--reason must say why the access is needed for longer")
    session = open_session(options.cluster)
    requests = AccessRequests(session)
    namespace = session.namespace
    try:
        earlier = parse_request(requests.get(namespace, options.name))
    except RequestError as error:
        raise CommandFailed(f"accessrequest {options.name} cannot be read: {error}") from error
    for _ in range(_NAME_ATTEMPTS):
        name = extension_name(options.name, random_suffix())
        try:
            body = creation_body(
                build_request(
                    name=name,
                    namespace=namespace,
                    actions=earlier.spec.actions,
                    duration=options.by,
                    reason=options.reason,
                    ticket=options.ticket or earlier.spec.ticket,
                    break_glass=False,
                    extends=options.name,
                )
            )
        except RequestError as error:
            raise UsageError(str(error)) from error
        if requests.create(namespace, body) is not None:
            break
    else:
        raise CommandFailed("every generated name was taken; try again")
    print(f"accessrequest.jitgate.dev/{name} created (extends {options.name} by {options.by})")
    print(f"Ask an approver to run: kubectl jit approve {name} -n {namespace}")
    if options.wait:
        return wait_for_decision(requests, namespace, name, options.timeout)
    return EXIT_OK
