"""jitgate's pure domain: no I/O and no framework (`make lint` checks it with import-linter).

The operator and the webhook are adapters around it: they read objects, ask the core what
to do and apply the answer.

Modules:

* `api`             — the pydantic models of `jitgate.dev/v1alpha1`, the CRDs' one source.
* `crds`            — the CRD manifests generated from `api`.
* `vocabulary`      — verbs, their phrases, kubectl's kind names: jitgate's words, once.
* `refusals`        — `Refusal`, the one answer of a rule that says no.
* `wire`            — reading a stored object that may not validate: the model or `Unreadable`.
* `requests`        — the AccessRequest state machine, split by phase (a package, with its map).
* `grants`          — grant planning (name, window, body) and how a grant ends (expired,
                      revoked, used up).
* `extensions`      — extending a live grant: what is refused, the extension's window.
* `events`          — the audit event vocabulary and the operator's records.
* `sessions`        — session recordings: `session.*` records, chunking, replay, asciicast.
* `next_steps`      — the kubectl commands a grant allows (`kubectl jit exec` where sessions
                      must be recorded): what the requester runs next.
* `admission`       — every admission rule: AccessRequest and Grant writes, protected actions
                      and their denial wording (a package, with its map).
* `policy`          — which AccessPolicies govern an action, composed (`Governing`: every
  one must be satisfied); request resolution.
* `schedule`        — a policy's windows (weekday hours in an IANA time zone): open or
                      closed at an instant, and when that next changes.
* `autoapprove`     — AccessPolicy autoApprove rules (CEL): their inputs, compilation,
                      evaluation and the digest an approval records.
* `policy_ready`    — a policy's Ready condition (it validates; its rules compile).
* `enforcement`     — whether the webhook configuration routes what a policy protects.
* `matching`        — whether a grant's actions cover an attempted action.
* `grant_index`     — live grants indexed for the webhook's lookups.
* `revocations`     — revoked AccessRequests the webhook holds itself (no operator needed).
* `actions`         — what a caller is attempting, in the terms grants and policies speak.
* `label_selectors` — Kubernetes label selector matching.
* `shell`           — command lines as a POSIX shell reads them (`shlex.join`, faster).
* `durations`, `clock`, `canonical` — Go durations, the injected clock, canonical JSON.
"""
