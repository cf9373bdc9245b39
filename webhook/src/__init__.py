"""jitgate's admission webhook (FastAPI over uvicorn, HTTPS only).

server        run_webhook(config) for `jitgate webhook` (uvloop + httptools); running(config) and
              run_webhook_in_thread(config) start one in-process for tests and the demo
app           the app factory; routers/admission (/validate, /mutate on plain ASGI, bounded
              concurrency) before FastAPI's routers/health (/healthz, /readyz, /metrics) and,
              with --witness-key, routers/witness (/witness/add-checkpoint: this replica
              cosigning its peers' checkpoints)
service       decides and audits: an AdmissionRequest in, an Answer out; the rules are
              jitgate.core.admission's (protected actions, AccessRequest and Grant writes)
review        strict AdmissionReview parsing (msgspec; pydantic the reference that words each
              HTTP 400), responses
decode        CONNECT / DELETE / eviction / scale / debug reviews decoded into AttemptedActions;
              autoscaler and namespace reviews into what the service resolves
lookups       bounded, timed reads for those: a target's replicas, a namespace's objects,
              an extension's earlier AccessRequest
cache, watch  the in-memory grant index, policies, namespace labels and revoked
              AccessRequests, kept current by list+watch threads (410 Gone re-lists, jittered
              backoff)
livegrants    one bounded, rate-limited live read of Grants before a "no live grant" denial
uses          the use count of a grant with maxUses, made atomically at the API server
memo          one decision and one record per user request (repeated reviews, a DELETE's
              several calls, exec retries)
callers       who is heard (--client-ca), and who sent a review (the memo's key)
traces        which user request a review belongs to: the API server's trace id
              (--apiserver-traces)
http1         the HTTP/1.1 protocol served: uvicorn's httptools one, each answer in one write,
              reviews answered without ASGI
audit         audit events and each record type's durability (allowed: before the answer)
tls           the serving certificate, reloaded when its files change
metrics       a Prometheus registry per app
gateway/      the session gateway (aggregated API sessions.jitgate.dev) served next to the webhook
              with its service and audit writer: `kubectl jit exec|attach|port-forward`
"""
