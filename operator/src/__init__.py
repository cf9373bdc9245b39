"""The jitgate operator (kopf): AccessRequests through their phases, Grants issued and ended.

An adapter around the pure core: what happens next to a request (the state machine in
`jitgate.core.requests`), how a grant is planned and ends (`jitgate.core.grants`) and what is
recorded (`jitgate.core.events`) are decided there; this package watches the objects, applies
the decisions and talks to the API server.

Modules, one concern each:

* `config`    — `OperatorConfig`, the command line as data.
* `runtime`   — `run(config, *, clock, stop_flag, ready_flag)`: audit writer, API client,
  kopf and the side services; what `jitgate operator`, tests and the demo run.
* `handlers`  — the kopf registry: policy and namespace indexes, a daemon per request and
  per grant, deletion handlers.
* `workflow`  — applies the core's steps and grant endings: audit record first, then the API
  call, then Events and notifications, under a per-request lock.
* `scheduler` — wake-ups at times of the injected clock, polled at a bounded interval.
* `kube`      — credentials (shared with kopf's login) and the few API calls made directly.
* `notify`    — optional Slack-compatible or generic JSON notifications, in the background.
* `slack`     — the Slack app (a package, with its map): interactive messages through the
  Slack Web API, and signed button clicks written as the approver by impersonation.
* `metrics`   — Prometheus metrics and their `/metrics` server.
"""
