"""`jitgate audit verify|query|export|tail|report`: check and read the audit log.

Exit codes: 0 success; 1 the check failed (a tampered or damaged log); 2 bad usage or
input that cannot be read at all. Errors are one sentence on stderr, never a traceback.

Module map:
* `commands`   — the parsers and their flags; each subcommand's handler.
* `options`    — each subcommand's typed options, read from the parsed command line.
* `guard`      — every expected failure as `jitgate audit COMMAND: one sentence.` and a code.
* `reading`    — opening the log, the key, the record selection, MAC checks, progress lines.
* `verify_cmd` — `verify`: every writer's chain, head witnesses, saved heads.
* `query_cmd`  — `query` (table, JSON, CSV) and `export` (JSON Lines, CSV).
* `tail_cmd`   — `tail`: the latest records, and new ones with `--follow`.
* `report_cmd` — `report`: the periodic access review, as tables or JSON.
* `sessions_cmd` — `sessions` (recorded sessions), `replay` (one played in the terminal) and
  `export --format asciicast`.

The audit layer (`jitgate.audit`) reads, verifies, selects and reviews; these modules only
turn the command line into calls to it and its answers into text (`jitgate.cli.render`).
"""
