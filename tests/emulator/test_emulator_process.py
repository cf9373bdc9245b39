"""`python -m jitgate.devtools.emulator`: the emulator as a process, as `jitgate demo` runs it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import yaml


async def test_serves_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jitgate.devtools.emulator",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--user",
        "admin",
        "--user",
        "alice",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            url = (await proc.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        assert [c["name"] for c in config["contexts"]] == ["admin", "alice"]
        assert config["current-context"] == "admin"
        async with (
            aiohttp.ClientSession(url) as session,
            session.get("/apis/jitgate.dev/v1alpha1") as rsp,
        ):
            kinds = {r["kind"] for r in (await rsp.json())["resources"]}
        assert {"AccessPolicy", "AccessRequest", "Grant"} <= kinds
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await proc.wait() == 0
