"""`kubectl jit`: ask for, review and decide just-in-time access, as a kubectl plugin.

Module map:
* `main`      — the entry point (`kubectl-jit`): parse, run, report a failure as `Error: …`.
* `arguments` — the parsers: commands, flags, `-n/--context/--kubeconfig` before or after.
* `options`   — each command's typed options.
* `request`   — `request`: create an AccessRequest (and `--wait`); `wait NAME` resumes.
* `extend`    — `extend NAME --by`: a request continuing a live grant without a gap.
* `waiting`   — waiting for the decision: progress, the grant window, the outcome's exit code.
* `streams`   — `exec`, `attach`, `port-forward`: kubectl's own, through the session gateway.
* `exits`     — the exit codes, one table for `--help`, the README and the code.
* `review`    — `list` (`--mine`, `--pending`) and `show` (with an extension chain).
* `approver_queue` — the approver's queue: what I may decide (as the policies say), by deadline.
* `decide`    — `approve`, `deny`, `review`, `revoke` and `cancel`.
* `build`     — AccessRequests and approval patches from arguments, without I/O.
* `views`     — how `list` and `show` present requests (kubectl's columns and ages).
* `cluster`   — the AccessRequest calls on the cluster, failures as one sentence.
* `rest`      — the small Kubernetes REST client those calls go through (urllib3, JSON).

Only urllib3, pydantic and PyYAML are needed (credentials come from `jitgate.kube`):
`pip install jitgate` without an extra is this client, with no `kubernetes` package.
"""
