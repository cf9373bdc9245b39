"""Every admission rule, decided without I/O: the webhook parses, asks here, audits, answers.

Modules:

* `writes`          — a write as the rules see it (`Write`, `Identity`), reading its objects.
* `stamping`        — `/mutate`: the authenticated identity written into an AccessRequest.
* `access_requests` — `/validate` for AccessRequests: create, update, and which rule applies.
* `approvals`       — status writes: appending one approval, bound to the spec's digest.
* `annotations`     — cancel, revoke and break-glass review annotations.
* `grant_writes`    — Grants are written by the operator alone.
* `protected`       — the decision on a protected action (`decide` → `Verdict`).
* `indirect`        — actions reached through a controller or by ending protection: an
                      autoscaler as a scale, a namespace delete, `unprotect`.
* `edits`           — field edits that amount to a delete or scale (owner references, a live
                      pod's deadline or image, ordinals, a Job's parallelism ...).
* `redeletes`       — a DELETE of an object already being deleted that changes nothing.
* `denials`         — why no grant covers an attempt, and the `kubectl jit request` to ask.
* `readiness`       — failing closed before the cluster is known (`NotReady`).
"""
