"""The `jitgate` program: one subcommand a module, each with typed options.

Module map:
* `main`          — the entry point: the parser, then the subcommand's handler; failures as
                    one sentence on stderr.
* `operator_cmd`  — `jitgate operator`: flags into an OperatorConfig, then kopf (server extra).
* `webhook_cmd`   — `jitgate webhook`: flags into a WebhookConfig, then uvicorn (server extra).
* `server_flags`  — the flags the operator and the webhook share (audit, kubeconfig, logging).
* `audit/`        — `jitgate audit verify|query|export|tail|report` (its own module map).
* `crds_cmd`      — `jitgate crds`: the CRDs generated from the API models.
* `demo_cmd`      — `jitgate demo` (demo extra).
"""
