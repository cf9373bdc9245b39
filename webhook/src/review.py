"""The `admission.k8s.io/v1` AdmissionReview envelope: strict parsing in, responses out.

Parsing is strict on purpose: every field jitgate reads must have exactly the JSON type the
API server sends, so malformed input is refused (HTTP 400) instead of being half-understood.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jitgate.core.admission.writes import JsonPatch

ADMISSION_API_VERSION = "admission.k8s.io/v1"
MAX_BODY_BYTES = 3 * 1024 * 1024

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class ReviewError(ValueError):
    """A body that is not a well-formed AdmissionReview; answered with HTTP 400."""


class _Strict(BaseModel):
    # Unknown fields are tolerated (the API server adds fields over time); known ones are
    # type-checked without coercion.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class GroupVersionKind(_Strict):
    group: str
    version: str
    kind: str


class GroupVersionResource(_Strict):
    group: str
    version: str
    resource: str


class UserInfo(_Strict):
    username: str = ""
    uid: str = ""
    groups: list[str] | None = None
    extra: dict[str, list[str] | None] | None = None


class AdmissionRequest(_Strict):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str = Field(default="", alias="subResource")
    request_kind: GroupVersionKind | None = Field(default=None, alias="requestKind")
    request_resource: GroupVersionResource | None = Field(default=None, alias="requestResource")
    request_sub_resource: str = Field(default="", alias="requestSubResource")
    name: str = ""
    namespace: str = ""
    operation: Operation
    user_info: UserInfo = Field(alias="userInfo")
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool | None = Field(default=None, alias="dryRun")
    options: dict[str, Any] | None = None

    @property
    def user(self) -> str:
        return self.user_info.username

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.user_info.groups or ())

    @property
    def is_dry_run(self) -> bool:
        return bool(self.dry_run)


class AdmissionReview(_Strict):
    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "The body is not valid JSON."
    if first["type"] == "model_type" and not first["loc"]:
        return "The body is not a JSON object."
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    message = first["msg"][0].lower() + first["msg"][1:]
    return f"The body is not an {ADMISSION_API_VERSION} AdmissionReview: {where}: {message}."


def parse_review(body: bytes) -> AdmissionRequest:
    """The request inside a well-formed AdmissionReview, or ReviewError saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise ReviewError(f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.")
    try:
        return AdmissionReview.model_validate_json(body).request
    except ValidationError as error:
        raise ReviewError(_describe(error)) from None


@dataclass(frozen=True)
class Answer:
    """What the webhook decided, before it is wrapped into an AdmissionReview."""

    allowed: bool
    message: str = ""
    reason: str = ""
    audit_annotations: dict[str, str] | None = None
    warnings: tuple[str, ...] = ()
    patch: JsonPatch | None = None


def allow(**kwargs: Any) -> Answer:
    return Answer(allowed=True, **kwargs)


def deny(message: str, reason: str = "Forbidden") -> Answer:
    return Answer(allowed=False, message=message, reason=reason)


def render(uid: str, answer: Answer) -> bytes:
    """The AdmissionReview response body for `answer`.

    Written field by field rather than built as a dictionary and encoded: on every review,
    and the same bytes (JSON escapes and all).
    """
    text = '{"uid":' + _string(uid) + (',"allowed":true' if answer.allowed else ',"allowed":false')
    if not answer.allowed:
        reason = _string(answer.reason or "Forbidden")
        text += f',"status":{{"status":"Failure","code":403,"reason":{reason},'
        text += f'"message":{_string(answer.message)}}}'
    if answer.audit_annotations:
        text += ',"auditAnnotations":' + _strings_object(answer.audit_annotations)
    if answer.warnings:
        text += ',"warnings":[' + ",".join([_string(warning) for warning in answer.warnings]) + "]"
    if answer.allowed and answer.patch:
        patch = base64.b64encode(json.dumps(answer.patch).encode()).decode()
        text += ',"patchType":"JSONPatch","patch":' + _string(patch)
    return _REVIEW_HEAD + text.encode() + b"}}"


def _strings_object(values: dict[str, str]) -> str:
    # What `json.dumps(values, separators=(",", ":"))` writes, at half its cost: an encoder
    # (even a kept one) builds its C encoder again on every call.
    return (
        "{" + ",".join([_string(key) + ":" + _string(value) for key, value in values.items()]) + "}"
    )


# The envelope around every response, encoded once.
_REVIEW_HEAD = (
    b'{"apiVersion":"' + ADMISSION_API_VERSION.encode() + b'","kind":"AdmissionReview","response":'
)
_string = json.encoder.encode_basestring_ascii  # a JSON string, as `json.dumps` writes one
