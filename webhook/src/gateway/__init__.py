"""The session gateway: `kubectl jit exec|attach|port-forward` through an aggregated API.

The API server authenticates the user and proxies (with the connection upgrade) every request
under `/apis/sessions.jitgate.dev/v1alpha1/` to the gateway, naming the user in front-proxy
headers over TLS with its proxy client certificate. The gateway believes those headers only from
that certificate, decides like the webhook (the same core decision on the same grant cache),
opens the stream to the pod through the API server as the user (impersonated, with a marker only
jitgate can sign), relays and records it, and ends it when its grant ends, is revoked or the
session is idle. It is served by the webhook process, on a port of its own
(`jitgate webhook --gateway-port`).

config       GatewayConfig: the port, the front-proxy CA and names, the marker key, the bounds
frontproxy   who is calling: the proxy client certificate checked, then the X-Remote-* headers
marker       the `jitgate.dev/session` user extra: signed by the gateway, checked by the webhook
paths        the URL layout kubectl speaks under the aggregated API, and its discovery documents
upstream     the gateway's own calls to the API server (impersonating the caller)
readtoend    its TLS both ways by asyncio's layer: uvloop's drops a stream's end (uvloop#661)
channels     the Kubernetes stream protocols (channel.k8s.io v4/v5, port-forward tunnelling)
spdy         SPDY/3.1 frames read from a copy of a port-forward tunnel's bytes (pure)
portforward  a port-forward's connections seen in its tunnel, recorded (fail closed)
relay        one live session: frames both ways, recorded, bounded, ended with a reason
registry     the live sessions: limits per user and in total, the loop that ends them
app          the aiohttp application; `serving(...)` runs it next to the webhook
"""
