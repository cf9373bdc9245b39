"""jitgate's admission webhook (FastAPI over uvicorn, HTTPS only).

server        serve(config) for `jitgate webhook`; running(config) and
              run_webhook_in_thread(config) start one in-process for tests and the demo
app           the app factory; routers/admission (/validate, /mutate) and
              routers/health (/healthz, /readyz, /metrics); dependencies
controller    an AdmissionRequest in, an Answer out: routes to the deciders below and
              audits every decision on a protected action
review        strict AdmissionReview parsing (HTTP 400 on malformed input), responses
protected     CONNECT / DELETE / scale reviews decoded into AttemptedActions
decisions     the pure decision on a protected action, from the cache alone
accessrequests  identity stamping (/mutate) and rules (/validate) for AccessRequests,
              and the Grant write guard
hints         denial wording and the `kubectl jit request ...` command
cache, watch  the in-memory grant index, policies and namespace labels, kept current by
              list+watch threads (410 Gone re-lists, jittered backoff)
audit         audit events and the durable-before-allow rule
tls           the serving certificate, reloaded when its files change
metrics       a Prometheus registry per app
"""
