"""Approve from Slack: interactive notifications and the signed interaction endpoint.

Modules, one concern each:

* `app`      — `SlackApp`: notifications posted and updated through the Slack Web API, and the
  HTTPS endpoint that turns a signed button click into an approval written as the approver
  (impersonation).
* `signing`  — Slack's v0 request signatures: HMAC-SHA256, a 5-minute window, no replays.
* `users`    — the admin's mapping from Slack user ids to Kubernetes users and groups.
* `messages` — the Block Kit messages: a request with buttons, its outcome, break-glass alerts.
"""
