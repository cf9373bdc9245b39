"""jitgate: just-in-time action approval for Kubernetes.

Package map, top to bottom; each layer imports only from the layers below it (`make lint`
checks this with import-linter, see `.importlinter`):

* `cli/`       — the two programs: `jitgate` (servers, audit, crds, demo) and `kubectl jit`.
* `devtools/`  — the Kubernetes API emulator, the demo, throwaway certificates, AdmissionReview
                 builders. Development only: the `demo` extra; nothing in the product imports it.
* `operator`   — the kopf operator, an adapter around `core.requests` (sources in `operator/src`).
* `webhook`    — the FastAPI admission webhook, an adapter around the core's admission rules
                 (sources in `webhook/src`).
* `kube`       — cluster credentials: one loader, one precedence rule, for every program.
* `audit/`     — the tamper-evident audit log: chain, sinks, Merkle tree, checkpoints, verify.
* `core/`      — the pure domain: API models and CRDs, policies, matching, the AccessRequest
                 state machine, admission rules. No I/O and no framework.

A plain `pip install jitgate` is the light `kubectl jit` client; the extras `server`,
`postgres`, `demo` and `dev` add the rest.
"""
