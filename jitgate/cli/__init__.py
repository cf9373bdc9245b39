"""jitgate's two command-line programs, and what they share.

Module map:
* `errors`       — the CLI's exception tree (`CliError`: one sentence and an exit code, 0/1/2),
                   and which extra to install when an optional part is missing.
* `options`      — `Parser` (no prefix matching, a single-valued flag given twice refused,
                   one-sentence usage errors), `JITGATE_<FLAG>` environment defaults, typed
                   options read from the parsed namespace.
* `render`       — the one renderer: aligned tables, CSV, JSON (array or lines) and YAML.
* `kinds`        — KIND/NAME arguments as kubectl takes them (`deploy/web`, `sts db`), as the
                   plural resources policies speak: `kubectl jit request` and `jitgate audit
                   query --object` read them alike.
* `completion`   — shell completion for both programs (bash, zsh, fish; `__complete`).
* `jitgate/`     — the `jitgate` program: operator, webhook, audit, crds, demo.
* `kubectl_jit/` — the `kubectl jit` plugin: request, list, show, approve, deny, review, …

Server commands import their frameworks only when they run: `kubectl jit`, `jitgate --help`
and `jitgate audit` on files need no kopf, FastAPI, uvicorn, aiohttp, psycopg or kmock.
"""
