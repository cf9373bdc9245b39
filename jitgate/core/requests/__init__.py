"""The AccessRequest state machine, without I/O, split by phase.

    new (no phase yet)
     ├─ every governing policy accepts it ────▶ Pending
     ├─ break-glass, as every one allows ─────▶ Approved
     └─ one refuses it, none governs, invalid ▶ Denied
    Pending
     ├─ every policy's approvals are met ─────▶ Approved
     ├─ an eligible approver denies ──────────▶ Denied
     ├─ the pending deadline passes ──────────▶ Expired
     └─ cancelled ────────────────────────────▶ Cancelled
    Approved
     ├─ the grant expires ────────────────────▶ Expired
     └─ revoked, or the grant deleted ────────▶ Revoked

Denied, Expired, Revoked and Cancelled are final; a finished request is deleted after the
retention period. `transitions.TRANSITIONS` is this diagram as data, and every phase change
goes through `transitions.transition()` (tests/core/test_transitions.py checks the table
against what `decide` does).

The operator reads a stored request (`stored.read_request`), asks `decide.decide()` for the
next `Step` and applies it: records first, then the grant, the status patch, Events and the
notification. Each step's records are derived from the stored status, which moves only after
the records are durable, so a crash between steps resumes where it stopped.

Modules:

* `transitions` — the transition table, `transition()`, `InvalidTransition`.
* `step`        — `World` (what a decision depends on), `Step` (what it returns), `Notice`,
  `RevokeGrant`, the condition types and `to_phase()`.
* `annotations` — the annotations users set to cancel, revoke and review, and who asked.
* `stored`      — a stored request as the state machine reads it (`jitgate.core.wire`).
* `decide`      — `decide()`: the next step, by phase.
* `new`         — a new request admitted by policy: Pending, Approved (break-glass), Denied;
  `deny_invalid` for a request whose spec does not validate.
* `pending`     — approvals recorded once and tallied, then approved, denied, expired, cancelled.
* `tally`       — counting approvals: who counted, who did not and why.
* `auto`        — autoApprove rules applied to a request: evaluated, recorded once per
  policy, counted as that policy's approvals.
* `windows`     — schedules applied to a request: approvals needed now, when to look again,
  when a grant approved now must end.
* `after_denial` — anti-shopping: a request soon after a denial of overlapping actions needs
  the denier or their approver group (`afterDenial.cooldown`).
* `approved`    — the grant issued (`issued()`), revoked on request, break-glass reviews.
* `finished`    — final phases: late reviews, deletion after the retention period.

How a grant ends (`end_grant`) is in `jitgate.core.grants`; the audit records in
`jitgate.core.events`.
"""
