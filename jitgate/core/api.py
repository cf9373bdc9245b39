"""The jitgate API (`jitgate.dev/v1alpha1`) as pydantic models.

These models are the single source of truth: `jitgate.core.crds` generates the CRD schemas from
them, so descriptions, enums, bounds and CEL rules are written once, here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from jitgate.core.durations import DURATION_PATTERN, parse_duration
from jitgate.core.vocabulary import (
    CONNECT_VERBS,
    CONTAINER_VERBS,
    NAMESPACES,
    PODS,
    SCALABLE_RESOURCES,
    VERBS,
    Verb,
)

GROUP = "jitgate.dev"
VERSION = "v1alpha1"
API_VERSION: Literal["jitgate.dev/v1alpha1"] = "jitgate.dev/v1alpha1"

RequestPhase = Literal["Pending", "Approved", "Denied", "Expired", "Revoked", "Cancelled"]
TERMINAL_PHASES: frozenset[str] = frozenset({"Denied", "Expired", "Revoked", "Cancelled"})
GrantPhase = Literal["Active", "Expired", "Revoked"]
Decision = Literal["Approve", "Deny"]

# The API server estimates CEL cost from maximum sizes, so every string and list is bounded.
_NAME = 253
_TEXT = 1024
MAX_USES = 1000


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _cel(rule: str, message: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=64,
        json_schema_extra=_cel(
            "duration(self) > duration('0s') && duration(self) <= duration('87600h')",
            "must be a positive duration of at most ten years, such as 15m",
        ),
    ),
    AfterValidator(_check_duration),
]
Name = Annotated[str, Field(min_length=1, max_length=_NAME)]
NonBlank = Annotated[
    str,
    Field(
        min_length=1,
        max_length=_TEXT,
        pattern=r"\S",
        json_schema_extra=_cel("self.matches('\\\\S')", "must not be empty"),
    ),
]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the API server stores, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_patch(self) -> dict[str, Any]:
        """A JSON merge patch setting the fields given explicitly (nested objects whole)."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, include=set(self.model_fields_set)
        )


class Subjects(ApiModel):
    """A set of Kubernetes users and groups, as they appear in the authenticated userInfo."""

    users: list[Name] = Field(
        default_factory=list, max_length=256, description="User names, exactly as authenticated."
    )
    groups: list[Name] = Field(
        default_factory=list, max_length=256, description="Group names, exactly as authenticated."
    )

    def includes(self, user: str, groups: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        if user in self.users:
            return True
        # Most lists are empty (a policy's exemptions): no loop over the caller's groups then.
        return bool(self.groups) and any(group in self.groups for group in groups)

    @property
    def empty(self) -> bool:
        return not self.users and not self.groups


class LabelSelectorRequirement(ApiModel):
    """One `matchExpressions` term, as in a Kubernetes label selector."""

    # The API server enforces the validator below too: a policy it stores but jitgate cannot
    # read protects nothing it can check (the webhook then denies where it might apply).
    model_config = ConfigDict(
        json_schema_extra=_cel(
            "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            "In and NotIn need at least one value; Exists and DoesNotExist take none",
        )
    )

    key: Name = Field(description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to `values`."
    )
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(ApiModel):
    """A standard Kubernetes label selector; an empty selector matches every namespace."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )


class NamespaceMatch(ApiModel):
    """Which namespaces a policy protects: listed by name, selected by label, or both."""

    names: list[Name] = Field(
        default_factory=list, max_length=256, description="Namespaces protected by name."
    )
    selector: LabelSelector | None = Field(
        default=None, description="Namespaces protected because their labels match."
    )


class BreakGlass(Subjects):
    """Who may self-activate an emergency grant (no approval; flagged for review)."""

    max_duration: Duration = Field(
        default="1h", description="Longest emergency grant; keep it short."
    )
    min_reason_length: int = Field(
        default=20,
        ge=0,
        le=_TEXT,
        description=(
            "Fewest characters a break-glass reason must have (surrounding spaces not "
            "counted), so that approvers are told what broke."
        ),
    )


class AfterDenial(ApiModel):
    """Anti-shopping: after an approver denies a request, asking again is not a second chance
    with a more lenient approver."""

    cooldown: Duration = Field(
        description=(
            "For this long after a denial, a request in the same namespace for overlapping "
            "actions (same verb and resource, a shared or unnamed object) needs an approval "
            "from the denier or an approver group the denier belongs to."
        )
    )


Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_START = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_END = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
# An IANA name's shape (Europe/Berlin, America/Argentina/Buenos_Aires, UTC, Etc/GMT+2): the
# API server refuses anything else; whether the zone exists is checked by `_check_time_zone`.
_TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"


def _check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin"
        ) from None
    return value


TimeZone = Annotated[
    str, Field(max_length=64, pattern=_TIME_ZONE), AfterValidator(_check_time_zone)
]


class ScheduleWindow(ApiModel):
    """Local wall-clock hours on some weekdays; an `end` at or before `start` runs past
    midnight into the next day."""

    model_config = ConfigDict(
        json_schema_extra=_cel("self.start != self.end", "start and end must differ")
    )

    days: list[Weekday] = Field(
        min_length=1, max_length=7, description="Weekdays the window opens on: Mon ... Sun."
    )
    start: Annotated[str, Field(pattern=_START, max_length=5)] = Field(
        default="00:00", description="Local time it opens, HH:MM."
    )
    end: Annotated[str, Field(pattern=_END, max_length=5)] = Field(
        default="24:00", description="Local time it closes, HH:MM (24:00: at midnight)."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ScheduleWindow:
        if self.start == self.end:
            raise ValueError("a window's start and end must differ")
        return self


class OutsideWindow(ApiModel):
    """What the policy does outside its windows."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            "(self.action == 'RequireApprovals') == has(self.approvals)",
            "RequireApprovals needs approvals; Deny takes none",
        )
    )

    action: Literal["Deny", "RequireApprovals"] = Field(
        default="Deny",
        description=(
            "Deny: nothing is granted and no grant authorizes; RequireApprovals: a request "
            "needs `approvals` approvals, and only a grant approved so authorizes."
        ),
    )
    approvals: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="RequireApprovals only: distinct approvals needed outside the windows.",
    )

    @model_validator(mode="after")
    def _approvals_fit_action(self) -> OutsideWindow:
        if (self.action == "RequireApprovals") != (self.approvals is not None):
            raise ValueError("outsideWindow RequireApprovals needs approvals; Deny takes none")
        return self


class Schedule(ApiModel):
    """When the policy grants access and its grants authorize: weekday hours in a time zone."""

    time_zone: TimeZone = Field(
        default="UTC", description="IANA time zone the hours are in, e.g. Europe/Berlin."
    )
    windows: list[ScheduleWindow] = Field(
        min_length=1, max_length=16, description="Open windows; any one of them open is open."
    )
    outside_window: OutsideWindow = Field(
        default_factory=OutsideWindow, description="Deny (the default) or RequireApprovals."
    )


_CEL_EXPRESSION_MAX = 2048


class AutoApproveRule(ApiModel):
    """One CEL rule: when it evaluates to true, the request is approved under this policy."""

    name: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    ] = Field(description="Named in the approval record, `kubectl jit show` and the audit log.")
    expression: Annotated[str, Field(min_length=1, max_length=_CEL_EXPRESSION_MAX)] = Field(
        description=(
            "A CEL expression over `request`, `requester` and `time` that must be true "
            "(README: Auto-approval)."
        )
    )


class AutoApprove(ApiModel):
    """Rules that approve a request without a person; never for break-glass."""

    time_zone: TimeZone | None = Field(
        default=None,
        description="Time zone of `time` in the rules; the schedule's, else UTC, when unset.",
    )
    rules: list[AutoApproveRule] = Field(
        min_length=1, max_length=16, description="The first rule that is true approves."
    )


SessionRecording = Literal["Required", "Optional"]


class SessionRules(ApiModel):
    """How exec, attach and port-forward sessions under a policy are held (DESIGN.md §3b)."""

    recording: SessionRecording = Field(
        default="Optional",
        description=(
            "Required: exec, attach and port-forward only through the session gateway "
            "(kubectl jit exec|attach|port-forward), which records every byte; a direct "
            "kubectl exec is denied. Optional: both ways are allowed."
        ),
    )
    idle_timeout: Duration | None = Field(
        default=None,
        description=(
            "A gateway session with no input or output for this long is ended (Go-style "
            "duration, e.g. 15m); unset means no idle limit besides the grant's expiry."
        ),
    )


class UsesLimit(ApiModel):
    """Whether requests must limit how often their grant may be used, and to how many uses."""

    required: bool = Field(
        default=False, description="Requests must set maxUses (one-time or N-use grants)."
    )
    max: int | None = Field(
        default=None, ge=1, le=MAX_USES, description="The most uses a request may ask for."
    )


class Extensions(ApiModel):
    """How a live grant may be extended (`kubectl jit extend`): by default with the same
    approvals as a new request, never beyond maxDuration counted from the first grant's start."""

    required_approvals: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Distinct approvals an extension needs; requiredApprovals when unset.",
    )
    max_total_duration: Duration | None = Field(
        default=None,
        description=(
            "Longest a grant and its extensions may last together, from the first grant's "
            "start; maxDuration when unset."
        ),
    )


class AccessPolicySpec(ApiModel):
    """Which actions in which namespaces are protected, and who may request and approve them."""

    # The API server enforces the validator below too (see LabelSelectorRequirement).
    model_config = ConfigDict(
        json_schema_extra=_cel(
            "!has(self.defaultDuration) || !has(self.maxDuration) || "
            "duration(self.defaultDuration) <= duration(self.maxDuration)",
            "defaultDuration must not exceed maxDuration",
        )
    )

    namespaces: NamespaceMatch = Field(description="The namespaces this policy protects.")
    actions: list[Verb] = Field(
        min_length=1,
        max_length=len(VERBS),
        description=(
            "Protected actions: exec, attach, portforward, delete, scale. unprotect (removing "
            "the labels that make a namespace protected) is protected by every policy, listed "
            "or not."
        ),
    )
    resources: list[Name] = Field(
        default_factory=lambda: ["pods"],
        max_length=64,
        description=(
            "Resources whose delete and scale are protected, plural and group-qualified for "
            "non-core groups, e.g. pods, deployments.apps, statefulsets.apps."
        ),
    )
    requesters: Subjects = Field(
        default_factory=Subjects,
        description="Who may request access; empty means any authenticated user.",
    )
    approvers: Subjects = Field(description="Who may approve or deny requests.")
    required_approvals: int = Field(
        default=1, ge=1, le=10, description="Distinct approvals needed to grant a request."
    )
    allow_self_approval: bool = Field(
        default=False, description="Whether a requester's own approval counts."
    )
    max_duration: Duration = Field(default="1h", description="Longest grant a request may ask for.")
    default_duration: Duration = Field(
        default="15m", description="Grant length when a request names none."
    )
    pending_timeout: Duration = Field(
        default="1h", description="How long a request may wait for approval before it expires."
    )
    break_glass: BreakGlass | None = Field(
        default=None, description="Emergency self-activation, flagged for review."
    )
    exemptions: Subjects = Field(
        default_factory=Subjects,
        description="Users and groups never intercepted (system controllers, GitOps agents).",
    )
    schedule: Schedule | None = Field(
        default=None,
        description=(
            "Windows (weekdays and hours in a time zone) inside which requests are granted "
            "and grants authorize; outsideWindow says what happens outside them."
        ),
    )
    auto_approve: AutoApprove | None = Field(
        default=None,
        description="CEL rules that approve a request without a person (never break-glass).",
    )
    sessions: SessionRules | None = Field(
        default=None,
        description="Recording and idle timeout of exec, attach and port-forward sessions.",
    )
    after_denial: AfterDenial | None = Field(
        default=None,
        description="Anti-shopping: a request soon after a denial needs the denier's group.",
    )
    max_uses: UsesLimit | None = Field(
        default=None,
        description="Whether requests must set maxUses, and its largest value.",
    )
    # No schema default: a default would be written into every stored policy on upgrade.
    max_start_ahead: Duration | None = Field(
        default=None,
        description="How far ahead a request's startAt may be (a scheduled start); 168h "
        "when unset.",
    )
    extensions: Extensions | None = Field(
        default=None,
        description="Approvals and total length for extensions; as for new requests when unset.",
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> AccessPolicySpec:
        if parse_duration(self.default_duration) > parse_duration(self.max_duration):
            raise ValueError("defaultDuration must not exceed maxDuration")
        return self


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata jitgate reads; the rest is kept as is."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: dt.datetime | None = None
    deletion_timestamp: dt.datetime | None = None


_SCALE_NEEDS = (
    f"scale needs resource {', '.join(SCALABLE_RESOURCES[:-1])} or {SCALABLE_RESOURCES[-1]}"
)


_UNPROTECT_NEEDS = f"unprotect needs resource {NAMESPACES}"


class RequestedAction(ApiModel):
    """One action a request asks for and a grant allows."""

    # The API server enforces the same cross-field rules as the validator below.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.container) || self.verb in "
                    f"[{', '.join(repr(verb) for verb in CONTAINER_VERBS)}]",
                    "message": "container applies only to exec and attach",
                },
                {
                    "rule": "!has(self.command) || self.verb == 'exec'",
                    "message": "command applies only to exec",
                },
                {
                    "rule": "self.verb != 'scale' || (has(self.resource) && self.resource in "
                    f"[{', '.join(repr(resource) for resource in SCALABLE_RESOURCES)}])",
                    "message": _SCALE_NEEDS,
                },
                {
                    "rule": "self.verb != 'delete' || has(self.resource)",
                    "message": "delete needs a resource",
                },
                {
                    "rule": "!has(self.replicas) || self.verb == 'scale'",
                    "message": "replicas applies only to scale",
                },
                {
                    "rule": f"self.verb != 'unprotect' || (has(self.resource) && "
                    f"self.resource == '{NAMESPACES}')",
                    "message": _UNPROTECT_NEEDS,
                },
            ]
        }
    )

    verb: Verb = Field(description="exec, attach, portforward, delete, scale or unprotect.")
    resource: Name | None = Field(
        default=None,
        description=(
            "Plural resource, group-qualified for non-core groups (deployments.apps). "
            "Defaults to pods for exec, attach and portforward."
        ),
    )
    names: list[Name] = Field(
        default_factory=list,
        max_length=64,
        description="Objects the action applies to; empty means any (if the policy allows).",
    )
    container: Name | None = Field(
        default=None, description="Container for exec and attach; any container when unset."
    )
    command: list[Annotated[str, Field(max_length=_TEXT)]] | None = Field(
        default=None,
        max_length=64,
        description="Exact argv an exec must run; any command (and interactive use) when unset.",
    )

    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="scale only: the replica count the grant allows scaling to; any count "
        "when unset.",
    )

    @model_validator(mode="after")
    def _fields_fit_verb(self) -> RequestedAction:
        if self.container is not None and self.verb not in CONTAINER_VERBS:
            raise ValueError(f"container applies only to exec and attach, not {self.verb}")
        if self.command is not None and self.verb != "exec":
            raise ValueError(f"command applies only to exec, not {self.verb}")
        if self.replicas is not None and self.verb != "scale":
            raise ValueError(f"replicas applies only to scale, not {self.verb}")
        if self.command is not None and not self.command:
            raise ValueError("command must name at least the program to run")
        if self.verb in CONNECT_VERBS and self.resource not in (None, PODS):
            raise ValueError(f"{self.verb} applies to pods, not {self.resource}")
        if self.verb == "scale" and self.resource not in SCALABLE_RESOURCES:
            raise ValueError(_SCALE_NEEDS)
        if self.verb == "delete" and self.resource is None:
            raise ValueError("delete needs a resource, e.g. pods or deployments.apps")
        if self.verb == "unprotect" and self.resource != NAMESPACES:
            raise ValueError(_UNPROTECT_NEEDS)
        return self

    @property
    def effective_resource(self) -> str:
        return self.resource or PODS


class Requester(ApiModel):
    """The authenticated identity that created a request; stamped by the webhook."""

    user: Name = Field(description="The authenticated user name.")
    groups: list[Name] = Field(
        default_factory=list, max_length=256, description="The user's authenticated groups."
    )


class RequestName(ApiModel):
    """An AccessRequest in the same namespace, by name."""

    name: Name = Field(description="The AccessRequest's name.")


class AccessRequestSpec(ApiModel):
    """What is requested, for how long and why. Immutable after creation."""

    actions: list[RequestedAction] = Field(
        min_length=1, max_length=16, description="The actions requested."
    )
    duration: Duration | None = Field(
        default=None,
        description="Grant length (Go duration); the policy's defaultDuration when unset.",
    )
    reason: NonBlank = Field(description="Why access is needed; shown to approvers.")
    ticket: Annotated[str, Field(max_length=_NAME)] | None = Field(
        default=None, description="An incident or change ticket reference."
    )
    break_glass: bool = Field(
        default=False,
        description="Emergency self-activation without approval, if the policy allows it.",
    )
    requester: Requester | None = Field(
        default=None, description="Stamped from the authenticated user at creation; never typed."
    )
    max_uses: int | None = Field(
        default=None,
        ge=1,
        le=MAX_USES,
        description="A one-time (1) or N-use grant: allowed actions it admits before it ends.",
    )
    start_at: dt.datetime | None = Field(
        default=None,
        description=(
            "A scheduled start: the grant authorizes nothing before it (approvals may come "
            "earlier); the pending timeout counts from it."
        ),
    )
    extends: RequestName | None = Field(
        default=None,
        description=(
            "The earlier, approved request whose live grant this one extends, with the same "
            "actions; duration is how much longer."
        ),
    )


class Approval(ApiModel):
    """One approver's decision; `user`, `time` and `specDigest` are stamped by the webhook."""

    user: Name | None = Field(default=None, description="The approver, as authenticated.")
    groups: list[Name] = Field(
        default_factory=list,
        max_length=256,
        description="The approver's authenticated groups, so eligibility can be re-checked.",
    )
    decision: Decision = Field(description="Approve or Deny.")
    comment: Annotated[str, Field(max_length=_TEXT)] = Field(
        default="", description="The approver's comment."
    )
    time: dt.datetime | None = Field(default=None, description="When the decision was made.")
    spec_digest: Annotated[str, Field(max_length=80)] | None = Field(
        default=None, description="SHA-256 digest of the request spec the approver saw."
    )
    via: Literal["slack"] | None = Field(
        default=None,
        description=(
            "Where the decision was made when not with kubectl: slack (jitgate's Slack app, "
            "acting as the approver by impersonation). Stamped by the webhook; never typed."
        ),
    )


class AutoApproval(ApiModel):
    """An approval by an AccessPolicy's autoApprove rule, written by the operator."""

    policy: Name = Field(description="The AccessPolicy whose rule approved.")
    rule: Annotated[str, Field(max_length=63)] = Field(description="The rule's name.")
    inputs_digest: Annotated[str, Field(max_length=80)] = Field(
        description="sha256 of the canonical JSON of what the rule saw (in the audit log)."
    )
    time: dt.datetime = Field(description="When the rule approved.")


class GrantReference(ApiModel):
    """The grant issued for an approved request."""

    name: Name = Field(description="The Grant's name, in the request's namespace.")
    expires_at: dt.datetime = Field(description="When the grant stops authorizing anything.")


class Condition(ApiModel):
    """A standard Kubernetes status condition."""

    type: Name = Field(description="The condition type, e.g. Approved or ReviewRequired.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(max_length=_NAME)] = Field(
        default="", description="A CamelCase reason."
    )
    message: Annotated[str, Field(max_length=_TEXT * 4)] = Field(
        default="", description="A human-readable explanation."
    )
    last_transition_time: dt.datetime | None = Field(
        default=None, description="When the status last changed."
    )


class GoverningPolicy(ApiModel):
    """One of the AccessPolicies governing a request, and the approvals it requires."""

    name: Name = Field(description="The AccessPolicy's name.")
    required_approvals: int = Field(
        ge=1, le=10, description="Distinct approvals by its approvers it needs."
    )


class DenialHold(ApiModel):
    """The earlier denial a request is held to: who must approve it for it to count."""

    request: Name = Field(description="The denied AccessRequest, in the same namespace.")
    denied_by: Name = Field(description="The approver who denied it.")
    denied_at: dt.datetime = Field(description="When it was denied.")
    approvers: Subjects = Field(
        description="The denier and the denier's approver groups: one of them must approve."
    )


class AccessRequestStatus(ApiModel):
    """Written by the operator, except `approvals`, which approvers append to."""

    phase: RequestPhase | None = Field(
        default=None,
        description="Pending, Approved, Denied, Expired, Revoked or Cancelled.",
    )
    policy: Name | None = Field(
        default=None,
        description=(
            "The AccessPolicy governing it when exactly one does (on a request denied at "
            "admission, the one that refused it); unset when several do (see policies), so "
            "that a reader knowing only this field finds no policy and fails closed."
        ),
    )
    policies: list[GoverningPolicy] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Every AccessPolicy governing it, by name; each one must be satisfied. Empty on "
            "requests admitted before this field existed: then policy alone governs."
        ),
    )
    required_approvals: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Distinct approvals needed; when several policies govern, the most any one of "
            "them needs (policies has each one's count)."
        ),
    )
    approvals: list[Approval] = Field(
        default_factory=list, max_length=64, description="Decisions, in the order they were made."
    )
    pending_deadline: dt.datetime | None = Field(
        default=None, description="When a Pending request expires unanswered."
    )
    auto_approvals: list[AutoApproval] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Approvals by governing policies' autoApprove rules, one per policy; each "
            "satisfies that policy's requiredApprovals (never another policy's)."
        ),
    )
    observed_approvals: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description=(
            "How many approvals entries the operator has recorded in the audit log and "
            "counted, so each is recorded once."
        ),
    )
    grant: GrantReference | None = Field(default=None, description="The issued grant.")
    after_denial: DenialHold | None = Field(
        default=None,
        description=(
            "Set by the operator when an earlier request for overlapping actions was denied "
            "within an AccessPolicy's afterDenial.cooldown: one approval must come from these "
            "approvers."
        ),
    )
    message: Annotated[str, Field(max_length=_TEXT * 4)] | None = Field(
        default=None, description="Why the request is in its phase."
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, description="Standard conditions."
    )
    actions: Annotated[str, Field(max_length=_TEXT * 4)] | None = Field(
        default=None,
        description="The actions and their targets as kubectl names them (exec pod/web-0), "
        "for kubectl get's ACTIONS column.",
    )

    @property
    def policy_names(self) -> tuple[str, ...]:
        """Every governing policy, whichever field names them (policies, else policy)."""
        return tuple(p.name for p in self.policies) or ((self.policy,) if self.policy else ())

    def required_by(self, name: str) -> int | None:
        """The approvals policy `name` required when the request was admitted, if recorded."""
        found = next((p for p in self.policies if p.name == name), None)
        if found is not None:
            return found.required_approvals
        return self.required_approvals if name == self.policy else None


_SPEC_IMMUTABLE = _cel("self == oldSelf", "spec is immutable")


class AccessPolicyStatus(ApiModel):
    """Written by the operator: whether the webhook configuration enforces the policy."""

    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Standard conditions. Enforced: False names the resources the webhooks do not "
            "route and the namespaces they do not select."
        ),
    )


class AccessPolicy(ApiModel):
    """Cluster-scoped: which actions in which namespaces need approval, and by whom."""

    api_version: Literal["jitgate.dev/v1alpha1"] = API_VERSION
    kind: Literal["AccessPolicy"] = "AccessPolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AccessPolicySpec
    status: AccessPolicyStatus = Field(default_factory=AccessPolicyStatus)


class AccessRequest(ApiModel):
    """A user's request, in the target namespace, for time-bound permission to act."""

    api_version: Literal["jitgate.dev/v1alpha1"] = API_VERSION
    kind: Literal["AccessRequest"] = "AccessRequest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: Annotated[AccessRequestSpec, Field(json_schema_extra=_SPEC_IMMUTABLE)]
    status: AccessRequestStatus = Field(default_factory=AccessRequestStatus)


class ObjectReference(ApiModel):
    """The AccessRequest a grant was issued for."""

    name: Name = Field(description="The AccessRequest's name.")
    uid: Annotated[str, Field(max_length=64)] = Field(
        default="", description="The AccessRequest's uid."
    )


class GrantSpec(ApiModel):
    """A live permission for one user to perform exactly these actions in this window."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.expiresAt > self.notBefore",
                    "message": "expiresAt must be after notBefore",
                },
                {
                    "rule": "has(self.policy) || (has(self.policies) && size(self.policies) > 0)",
                    "message": "a grant names the policy or policies that governed it",
                },
            ]
        }
    )

    user: Name = Field(description="The user the grant authorizes.")
    actions: list[RequestedAction] = Field(
        min_length=1, max_length=16, description="Copied from the request."
    )
    not_before: dt.datetime = Field(description="The grant authorizes nothing before this time.")
    expires_at: dt.datetime = Field(description="The grant authorizes nothing from this time on.")
    access_request: ObjectReference = Field(description="The request it was issued for.")
    policy: Name | None = Field(
        default=None,
        description=(
            "The AccessPolicy that governed the request when exactly one did; unset when "
            "several did (see policies)."
        ),
    )
    policies: list[Name] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Every AccessPolicy that governed the request. Empty on grants issued before this "
            "field existed: then policy names the one."
        ),
    )
    approvals: list[Approval] = Field(
        default_factory=list, max_length=64, description="The approval chain, copied."
    )
    auto_approvals: list[AutoApproval] = Field(
        default_factory=list, max_length=32, description="Rule approvals, copied."
    )
    break_glass: bool = Field(default=False, description="An emergency grant awaiting review.")
    approved_outside_window: list[Name] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Scheduled policies whose outsideWindow approvals this grant met, so it also "
            "authorizes outside their windows; outside any other's window it authorizes nothing."
        ),
    )
    # Copied so that every action the grant admits is audited with why it was asked for,
    # without the webhook reading the request. Absent from grants issued before they existed.
    reason: Annotated[str, Field(max_length=_TEXT)] | None = Field(
        default=None, description="The request's reason, copied."
    )
    ticket: Annotated[str, Field(max_length=_NAME)] | None = Field(
        default=None, description="The request's ticket, copied."
    )
    max_uses: int | None = Field(
        default=None,
        ge=1,
        le=MAX_USES,
        description=(
            "Allowed actions the grant admits (status.uses counts them); unlimited when unset."
        ),
    )
    window_start: dt.datetime | None = Field(
        default=None,
        description=(
            "An extension's: when the first grant it continues began (maxDuration counts "
            "from it); unset on a first grant."
        ),
    )

    @model_validator(mode="after")
    def _window_is_ordered(self) -> GrantSpec:
        if self.expires_at <= self.not_before:
            raise ValueError("expiresAt must be after notBefore")
        return self

    @model_validator(mode="after")
    def _names_a_policy(self) -> GrantSpec:
        if self.policy is None and not self.policies:
            raise ValueError("a grant names the policy or policies that governed it")
        return self

    @property
    def policy_names(self) -> tuple[str, ...]:
        """Every policy that governed the grant's request, whichever field names them."""
        return tuple(self.policies) or ((self.policy,) if self.policy else ())


class GrantStatus(ApiModel):
    """Written by the operator, except `uses`, which the webhook counts."""

    phase: GrantPhase | None = Field(default=None, description="Active, Expired or Revoked.")
    uses: int | None = Field(
        default=None,
        ge=0,
        le=MAX_USES,
        description=(
            "Allowed actions admitted so far, on a grant with maxUses; the webhook increments "
            "it, one write per use, with the object's resourceVersion as precondition."
        ),
    )
    last_use: Annotated[str, Field(max_length=_NAME)] | None = Field(
        default=None,
        description=(
            "The admission review uid of the latest counted use: a webhook replica whose "
            "write went unanswered learns from it that the use was counted."
        ),
    )
    actions: Annotated[str, Field(max_length=_TEXT * 4)] | None = Field(
        default=None,
        description="The actions and their targets as kubectl names them (exec pod/web-0), "
        "for kubectl get's ACTIONS column.",
    )


class Grant(ApiModel):
    """Created and deleted by the jitgate operator only."""

    api_version: Literal["jitgate.dev/v1alpha1"] = API_VERSION
    kind: Literal["Grant"] = "Grant"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: Annotated[GrantSpec, Field(json_schema_extra=_SPEC_IMMUTABLE)]
    status: GrantStatus = Field(default_factory=GrantStatus)
