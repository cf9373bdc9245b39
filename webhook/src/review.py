"""The `admission.k8s.io/v1` AdmissionReview envelope: strict parsing in, responses out.

Parsing is strict on purpose: every field jitgate reads must have exactly the JSON type the
API server sends, so malformed input is refused (HTTP 400) instead of being half-understood.

Two parsers, one contract. `msgspec` parses every review into the `AdmissionRequest` the
webhook decides on, at a quarter of pydantic's cost (profiled: pydantic's parse was a tenth
of an allowed exec's own work). The pydantic models (`_Review`) are the reference: a body the
fast parser refuses is parsed by them, so a malformed review gets pydantic's specific
message, and the few valid bodies only pydantic accepts (NaN or 1e400 in an object, a
duplicate key whose first value is wrong) are still accepted, as before. The fast parser never
accepts what the reference refuses, nor reads a body differently (tests/webhook/test_review.py
compares both on mutated and arbitrary bodies): it has no nesting limit of its own below
Python's, so bodies that might nest deeper than the reference allows go to the reference.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jitgate.core.admission.writes import JsonPatch

ADMISSION_API_VERSION = "admission.k8s.io/v1"
MAX_BODY_BYTES = 3 * 1024 * 1024

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class ReviewError(ValueError):
    """A body that is not a well-formed AdmissionReview; answered with HTTP 400."""


# What the webhook decides on. Unknown fields are tolerated (the API server adds fields over
# time); known ones are type-checked without coercion (msgspec never coerces JSON).


class GroupVersionKind(msgspec.Struct, frozen=True):
    group: str
    version: str
    kind: str


class GroupVersionResource(msgspec.Struct, frozen=True):
    group: str
    version: str
    resource: str


class UserInfo(msgspec.Struct, frozen=True):
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] | None = None
    extra: dict[str, list[str] | None] | None = None


class AdmissionRequest(msgspec.Struct, frozen=True, rename="camel"):
    uid: Annotated[str, msgspec.Meta(min_length=1)]
    kind: GroupVersionKind
    resource: GroupVersionResource
    operation: Operation
    user_info: UserInfo
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool | None = None
    options: dict[str, Any] | None = None

    @property
    def user(self) -> str:
        return self.user_info.username

    @property
    def groups(self) -> tuple[str, ...]:
        return self.user_info.groups or ()

    @property
    def is_dry_run(self) -> bool:
        return bool(self.dry_run)


class _FastReview(msgspec.Struct, frozen=True, rename="camel"):
    api_version: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


_fast_review: Final = msgspec.json.Decoder(_FastReview)
# At most this many brackets, a body nests no deeper than the reference parser allows (its
# limit is 200 levels); a body with more is parsed by the reference alone.
_FAST_BRACKETS: Final = 200
# Every byte but the opening brackets: what `bytes.translate` deletes to count them in one pass
# (faster than two `count`s).
_NOT_OPENING: Final = bytes(byte for byte in range(256) if byte not in b"[{")


# The reference: what a well-formed review is, and what is wrong with one that is not.


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _GroupVersionKind(_Strict):
    group: str
    version: str
    kind: str


class _GroupVersionResource(_Strict):
    group: str
    version: str
    resource: str


class _UserInfo(_Strict):
    username: str = ""
    uid: str = ""
    groups: list[str] | None = None
    extra: dict[str, list[str] | None] | None = None


class _Request(_Strict):
    uid: str = Field(min_length=1)
    kind: _GroupVersionKind
    resource: _GroupVersionResource
    sub_resource: str = Field(default="", alias="subResource")
    request_kind: _GroupVersionKind | None = Field(default=None, alias="requestKind")
    request_resource: _GroupVersionResource | None = Field(default=None, alias="requestResource")
    request_sub_resource: str = Field(default="", alias="requestSubResource")
    name: str = ""
    namespace: str = ""
    operation: Operation
    user_info: _UserInfo = Field(alias="userInfo")
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool | None = Field(default=None, alias="dryRun")
    options: dict[str, Any] | None = None


class _Review(_Strict):
    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: _Request


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
    if len(body.translate(None, _NOT_OPENING)) <= _FAST_BRACKETS:
        try:
            return _fast_review.decode(body).request
        except (msgspec.DecodeError, RecursionError):
            pass  # the reference says what is wrong (or accepts what only it accepts)
    return reference_review(body)


def reference_review(body: bytes) -> AdmissionRequest:
    """`parse_review` by the reference parser alone (pydantic)."""
    try:
        request = _Review.model_validate_json(body).request
    except ValidationError as error:
        raise ReviewError(_describe(error)) from None
    # Its values are already what the fast parser's types hold (lists become tuples).
    return msgspec.convert(request.model_dump(by_alias=True), AdmissionRequest)


class Answer(msgspec.Struct, frozen=True):
    """What the webhook decided, before it is wrapped into an AdmissionReview. (A Struct
    rather than a frozen dataclass: built on every review, in a tenth of the time.)"""

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
