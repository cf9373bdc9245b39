"""The jitgate operator (kopf): AccessRequests through their phases, Grants issued and ended.

Modules, one concern each:

* `config`    — `OperatorConfig`, the command line as data.
* `runtime`   — `run(config, *, clock, stop_flag, ready_flag)`: audit writer, API client,
  kopf and the side services; what `jitgate operator`, tests and the demo run.
* `handlers`  — the kopf registry: policy and namespace indexes, a daemon per request and
  per grant, deletion handlers.
* `workflow`  — applies decisions: audit record first, then the API call, then Events and
  notifications, under a per-request lock.
* `decide`    — pure: the next step of a request, and how a grant ends.
* `records`   — pure: the audit events, each with the key that makes it recorded once.
* `grants`    — pure: a grant's name, window, owner reference and body.
* `scheduler` — wake-ups at times of the injected clock, polled at a bounded interval.
* `kube`      — credentials (shared with kopf's login) and the few API calls made directly.
* `notify`    — optional Slack-compatible or generic JSON notifications, in the background.
* `metrics`   — Prometheus metrics and their `/metrics` server.
"""
