"""The gateway's own port over real TLS (served by asyncio's TLS layer, `ReadToEndSite`): it
answers only the API server's front proxy. No client certificate is 401, a certificate of
another name from the front-proxy CA is 403, and the front proxy's certificate is believed."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from jitgate.webhook.cache import ClusterCache
from jitgate.webhook.gateway.app import Gateway, serving
from jitgate.webhook.gateway.config import GatewayConfig
from jitgate.webhook.gateway.paths import GROUP_VERSION
from jitgate.webhook.gateway.upstream import Upstream
from jitgate.webhook.service import AdmissionService
from jitgate.webhook.tls import ReloadingTLS
from support.clocks import NOW
from webhook.conftest import Pki

from jitgate.audit.connect import open_audit_writer
from jitgate.core.clock import ManualClock
from jitgate.devtools.devcerts import DevCA
from jitgate.kube import Credentials

PROXY_NAME = "front-proxy-client"


async def test_the_gateway_port_believes_only_the_front_proxys_certificate(
    pki: Pki, lagging_cache: ClusterCache, tmp_path: Path
) -> None:
    front_proxy = DevCA(tmp_path, "front-proxy CA")
    proxy_cert = front_proxy.issue(PROXY_NAME, server=False, client=True)
    other_cert = front_proxy.issue("someone-else", server=False, client=True)
    clock = ManualClock(NOW)
    config = GatewayConfig(
        port=0,
        requestheader_client_ca=front_proxy.cert_file,
        requestheader_allowed_names=frozenset({PROXY_NAME}),
    )
    tls = ReloadingTLS(pki.cert_file, pki.key_file, client_ca=front_proxy.cert_file)
    url = f"file://{tmp_path / 'audit'}"

    def client(certificate: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = pki.client_context()
        if certificate is not None:
            context.load_cert_chain(*certificate)
        return context

    async with open_audit_writer(url, writer_id="gw-0", clock=clock) as audit:
        gateway = Gateway(
            config,
            service=AdmissionService(cache=lagging_cache, audit=audit, clock=clock),
            upstream=Upstream(
                Credentials(source="test", server="https://127.0.0.1:9", namespace="default"),
                max_frame_bytes=config.max_frame_bytes,
                open_timeout=1.0,
            ),
            writer=lambda: None,
            session_key=b"k" * 32,
            clock=clock,
        )
        async with (
            serving(gateway, host="127.0.0.1", tls=tls) as port,
            aiohttp.ClientSession() as http,
        ):

            async def ask(certificate: tuple[Path, Path] | None) -> tuple[int, dict[str, object]]:
                async with http.get(
                    f"https://localhost:{port}/apis/{GROUP_VERSION}",
                    headers={"X-Remote-User": "alice", "X-Remote-Group": "developers"},
                    ssl=client(certificate),
                ) as answer:
                    return answer.status, await answer.json()

            nobody = await ask(None)
            someone_else = await ask(other_cert)
            front_proxy_asks = await ask(proxy_cert)

    assert nobody[0] == 401
    assert "answers only the Kubernetes API server's front proxy" in str(nobody[1]["message"])
    assert someone_else[0] == 403
    assert "'someone-else'" in str(someone_else[1]["message"])
    assert front_proxy_asks[0] == 200
    assert front_proxy_asks[1]["groupVersion"] == GROUP_VERSION
