"""A local HTTPS admission webhook that allows everything and records what it was asked: the
chart's routing and CEL matchConditions observed on the real API server
(tests/apiserver/test_chart_routing.py, and the routing share in `make bench`)."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apiserver.harness import KubeAPIServer

# (operation, resource, subresource, name) of each AdmissionReview the webhook was sent.
Seen = tuple[str, str, str, str]


class Recorder:
    """A local HTTPS webhook that allows everything and records each request."""

    def __init__(self, api: KubeAPIServer) -> None:
        cert, key = api.ca.issue("routing-webhook", dns=["localhost"], ips=["127.0.0.1"])
        self.seen: list[Seen] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                recorder.seen.append(
                    (
                        request["operation"],
                        request["resource"]["resource"],
                        request.get("subResource", ""),
                        request.get("name", ""),
                    )
                )
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": request["uid"], "allowed": True},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"

    def during(self, action: Any) -> list[Seen]:
        """What reached the webhook while ``action()`` ran (the API server calls it inline)."""
        before = len(self.seen)
        action()
        return self.seen[before:]
