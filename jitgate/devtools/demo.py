"""`jitgate demo`: the whole story on a laptop, no cluster needed.

It starts the Kubernetes API emulator, the operator and the webhook (over TLS) as separate
processes, exactly as they run in a cluster, and plays alice's and bob's parts. The emulator
calls no admission webhooks, so the demo plays the API server's part too: it sends the
webhook the AdmissionReviews the API server would send, applies the mutating webhook's patch
and stores the object only when the validating webhook allows it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import jsonpatch
from prometheus_client.parser import text_string_to_metric_families

from jitgate.core.api import AccessPolicy, AccessRequest, AccessRequestSpec
from jitgate.devtools.admission_reviews import Review, access_request_review, exec_review
from jitgate.devtools.devcerts import DevCA

OPERATOR_USER = "system:serviceaccount:jitgate:jitgate-operator"
WEBHOOK_USER = "system:serviceaccount:jitgate:jitgate-webhook"
ALICE = ("alice", ("developers",))
BOB = ("bob", ("sre",))
GRANT_SECONDS = 6
STEP_TIMEOUT = 20.0
Json = dict[str, Any]


class DemoFailed(Exception):
    """A step did not show what it should have; the message says which."""


@dataclass
class Narrator:
    out: TextIO
    started: float = field(default_factory=time.monotonic)
    step: int = 0

    def title(self, text: str) -> None:
        self.step += 1
        self.out.write(f"\n[{time.monotonic() - self.started:5.1f}s] {self.step}. {text}\n")
        self.out.flush()

    def say(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            self.out.write(f"      {line}\n")
        self.out.flush()


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


async def _spawn(name: str, args: Sequence[str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    handle = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE if name == "emulator" else handle,
        stderr=handle,
        cwd=workdir,
    )
    handle.close()
    return Process(name, proc, log)


async def _until(
    what: str, check: Callable[[], Awaitable[Any]], within: float = STEP_TIMEOUT
) -> Any:
    """Poll a cheap check until it returns something truthy; bounded."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Cluster:
    """The emulator's REST API; the bearer token names the user (the emulator trusts it)."""

    http: httpx.AsyncClient

    async def call(
        self,
        method: str,
        path: str,
        user: str = "admin",
        content_type: str = "application/json",
        **kwargs: Any,
    ) -> Json:
        headers = {"Authorization": f"Bearer {user}", "Content-Type": content_type}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise DemoFailed(f"{method} {path} failed: {response.status_code} {response.text}")
        result: Json = response.json()
        return result

    async def create(self, path: str, body: Json) -> Json:
        return await self.call("POST", path, json=body)

    async def request(self, name: str) -> Json:
        return await self.call(
            "GET", f"/apis/jitgate.dev/v1alpha1/namespaces/prod/accessrequests/{name}"
        )

    async def grants(self) -> list[Json]:
        listing = await self.call("GET", "/apis/jitgate.dev/v1alpha1/namespaces/prod/grants")
        items: list[Json] = listing.get("items", [])
        return items


@dataclass
class Webhook:
    """Plays the API server's side of admission against the running webhook."""

    http: httpx.AsyncClient

    async def post(self, path: str, review: Review) -> Json:
        response = await self.http.post(path, json=review)
        if response.status_code != 200:
            raise DemoFailed(f"webhook {path} answered {response.status_code}: {response.text}")
        answer: Json = response.json()["response"]
        return answer

    async def admit(self, review: Review) -> tuple[Json, Json]:
        """Mutate, then validate the mutated object, as the API server chains them."""
        mutated = await self.post("/mutate", review)
        obj = review["request"]["object"]
        if mutated.get("patch"):
            patch = json.loads(base64.b64decode(mutated["patch"]))
            obj = jsonpatch.apply_patch(obj, patch)
            review = {**review, "request": {**review["request"], "object": obj}}
        verdict = await self.post("/validate", review)
        return verdict, obj

    async def grants_cached(self) -> float:
        text = (await self.http.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            if family.name == "jitgate_webhook_cache_objects":
                for sample in family.samples:
                    if "grant" in sample.labels.get("kind", "").lower():
                        return float(sample.value)
        return 0.0


def _exec(user: tuple[str, tuple[str, ...]]) -> Review:
    return exec_review(
        user=user[0], groups=user[1], namespace="prod", pod="web-0", container="app", command=["ls"]
    )


def _message(answer: Json) -> str:
    return str(answer.get("status", {}).get("message", ""))


def _policy() -> Json:
    return AccessPolicy.model_validate(
        {
            "metadata": {"name": "production"},
            "spec": {
                "namespaces": {"selector": {"matchLabels": {"jitgate.dev/protected": "true"}}},
                "actions": ["exec", "attach", "portforward", "delete", "scale"],
                "resources": ["pods", "deployments.apps"],
                "approvers": {"groups": ["sre"]},
                "requiredApprovals": 1,
                "maxDuration": "1h",
            },
        }
    ).to_wire()


def _access_request() -> Json:
    spec = AccessRequestSpec.model_validate(
        {
            "actions": [
                {"verb": "exec", "names": ["web-0"], "container": "app", "command": ["ls"]}
            ],
            "duration": f"{GRANT_SECONDS}s",
            "reason": "INC-1234: worker stuck",
            "ticket": "INC-1234",
            # Typed by alice to impersonate bob; the webhook stamps the real requester.
            "requester": {"user": "bob", "groups": ["sre"]},
        }
    )
    request = AccessRequest(metadata={"name": "fix-web-0", "namespace": "prod"}, spec=spec)
    wire = request.to_wire()
    wire.pop("status", None)
    return wire


@contextlib.asynccontextmanager
async def _stack(workdir: Path, narrator: Narrator) -> AsyncIterator[tuple[Cluster, Webhook, Path]]:
    """Start the emulator, then the webhook and the operator; stop all of them at the end."""
    processes: list[Process] = []
    audit_dir = workdir / "audit"
    hmac_key_file = workdir / "audit-hmac.key"
    hmac_key_file.write_bytes(secrets.token_bytes(32))
    authority = DevCA(workdir / "tls")
    cert_file, tls_key_file = authority.issue("webhook")
    try:
        emulator = await _spawn(
            "emulator",
            [
                "-m", "jitgate.devtools.emulator",
                "--port", "0", "--kubeconfig", "admin.kubeconfig",
                "--user", "admin", "--user", WEBHOOK_USER, "--user", OPERATOR_USER,
            ],
            workdir,
        )  # fmt: skip
        processes.append(emulator)
        assert emulator.proc.stdout is not None
        line = await asyncio.wait_for(emulator.proc.stdout.readline(), STEP_TIMEOUT)
        if not line:
            raise DemoFailed(f"the emulator did not start:\n{emulator.tail()}")
        url = line.decode().strip()
        narrator.say(f"Kubernetes API emulator listening at {url}")
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            cluster = Cluster(api)
            await _seed(cluster)
            narrator.say("namespace prod (labelled jitgate.dev/protected=true), pod prod/web-0,")
            narrator.say("AccessPolicy production: exec/attach/port-forward/delete/scale need")
            narrator.say("one approval from group sre")
            kubeconfig = workdir / "admin.kubeconfig"
            webhook_port = _free_port()
            common = ["--audit", audit_dir.as_uri(), "--audit-key-file", str(hmac_key_file)]
            processes.append(
                await _spawn(
                    "webhook",
                    [
                        "-m", "jitgate.cli.jitgate", "webhook", "--host", "127.0.0.1",
                        "--port", str(webhook_port), "--tls-cert", str(cert_file),
                        "--tls-key", str(tls_key_file), "--kubeconfig", str(kubeconfig),
                        "--writer-id", "jitgate-webhook-0", "--operator-user", OPERATOR_USER,
                        *common,
                    ],
                    workdir,
                )
            )  # fmt: skip
            processes.append(
                await _spawn(
                    "operator",
                    [
                        "-m", "jitgate.cli.jitgate", "operator", "--standalone", "--all-namespaces",
                        "--kubeconfig", str(kubeconfig), "--writer-id", "jitgate-operator-0",
                        "--poll-interval", "0.2", *common,
                    ],
                    workdir,
                )
            )  # fmt: skip
            async with httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{webhook_port}",
                verify=str(authority.cert_file),
                timeout=10,
            ) as tls:
                webhook = Webhook(tls)

                async def ready() -> bool:
                    for process in processes:
                        if process.proc.returncode is not None:
                            raise DemoFailed(f"the {process.name} exited:\n{process.tail()}")
                    with contextlib.suppress(httpx.TransportError):
                        return (await tls.get("/readyz")).status_code == 200
                    return False

                await _until("the webhook to be ready", ready)
                narrator.say(
                    f"webhook ready at https://127.0.0.1:{webhook_port} (TLS), operator running"
                )
                yield cluster, webhook, audit_dir
    except DemoFailed as failure:
        logs = "\n".join(f"--- {p.name} log ---\n{p.tail()}" for p in processes)
        raise DemoFailed(f"{failure}\n{logs}") from None
    finally:
        for process in reversed(processes):
            await process.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _seed(cluster: Cluster) -> None:
    await cluster.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "prod", "labels": {"jitgate.dev/protected": "true"}},
        },
    )
    await cluster.create(
        "/api/v1/namespaces/prod/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "prod"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        },
    )
    await cluster.create("/apis/jitgate.dev/v1alpha1/accesspolicies", _policy())


async def _story(cluster: Cluster, webhook: Webhook, narrator: Narrator) -> None:
    narrator.title("alice: kubectl exec -n prod web-0 -c app -- ls")
    answer = await webhook.post("/validate", _exec(ALICE))
    if answer["allowed"]:
        raise DemoFailed("alice's exec was allowed without a grant")
    narrator.say(f"DENIED (HTTP {answer['status']['code']}): {_message(answer)}")

    narrator.title("alice asks for it: kubectl jit request exec web-0 -n prod -c app ... -- ls")
    narrator.say("(her YAML claims to be from bob; the mutating webhook stamps the real user)")
    body = _access_request()
    verdict, stored = await webhook.admit(
        access_request_review("CREATE", user=ALICE[0], groups=ALICE[1], obj=body)
    )
    if not verdict["allowed"]:
        raise DemoFailed(f"alice's request was refused: {_message(verdict)}")
    await cluster.create("/apis/jitgate.dev/v1alpha1/namespaces/prod/accessrequests", stored)
    requester = stored["spec"]["requester"]["user"]
    narrator.say(f"accessrequest.jitgate.dev/fix-web-0 created, requester stamped: {requester}")
    if requester != "alice":
        raise DemoFailed(f"the requester was stored as {requester}, not alice")

    async def pending() -> Json | None:
        obj = await cluster.request("fix-web-0")
        return obj if obj.get("status", {}).get("phase") == "Pending" else None

    request = await _until("the operator to mark the request Pending", pending)
    status = request["status"]
    narrator.say(
        f"operator: phase Pending under policy {status.get('policy')}, "
        f"{status.get('requiredApprovals')} approval needed"
    )

    narrator.title("alice tries to approve her own request")
    verdict, _ = await _approve(webhook, request, ALICE, "looks fine to me")
    if verdict["allowed"]:
        raise DemoFailed("alice was allowed to approve her own request")
    narrator.say(f"REFUSED: {_message(verdict)}")

    narrator.title("bob (group sre): kubectl jit approve fix-web-0 -n prod -m 'ok, INC-1234'")
    verdict, approved = await _approve(webhook, request, BOB, "ok, INC-1234")
    if not verdict["allowed"]:
        raise DemoFailed(f"bob's approval was refused: {_message(verdict)}")
    await cluster.call(
        "PATCH",
        "/apis/jitgate.dev/v1alpha1/namespaces/prod/accessrequests/fix-web-0/status",
        user=BOB[0],
        content_type="application/merge-patch+json",
        content=json.dumps({"status": {"approvals": approved["status"]["approvals"]}}),
    )
    stamp = approved["status"]["approvals"][-1]
    narrator.say(f"approval stamped: user={stamp['user']} time={stamp['time']}")
    narrator.say(f"bound to spec {stamp['specDigest'][:23]}…")

    async def granted() -> Json | None:
        obj = await cluster.request("fix-web-0")
        return obj if obj.get("status", {}).get("phase") == "Approved" else None

    request = await _until("the operator to approve and issue a grant", granted)
    grant = request["status"]["grant"]
    narrator.say(f"operator: Approved; Grant {grant['name']} live until {grant['expiresAt']}")
    await _until("the webhook's watch to see the grant", webhook.grants_cached)

    narrator.title("alice runs the same exec again")
    answer = await webhook.post("/validate", _exec(ALICE))
    if not answer["allowed"]:
        raise DemoFailed(f"alice's exec was denied with a grant: {_message(answer)}")
    narrator.say("ALLOWED (its audit record was fsync'd before this answer)")
    narrator.say(f"auditAnnotations: {json.dumps(answer.get('auditAnnotations', {}))}")
    for warning in answer.get("warnings", []):
        narrator.say(f"warning: {warning}")

    narrator.title(f"the grant expires ({GRANT_SECONDS}s TTL for the demo)")

    async def expired() -> Json | None:
        obj = await cluster.request("fix-web-0")
        gone = not await cluster.grants()
        return obj if gone and obj.get("status", {}).get("phase") == "Expired" else None

    await _until("the operator to delete the grant", expired, within=GRANT_SECONDS + STEP_TIMEOUT)
    narrator.say("operator: Grant deleted at expiresAt, request phase Expired")

    narrator.title("alice runs the exec once more")
    answer = await webhook.post("/validate", _exec(ALICE))
    if answer["allowed"]:
        raise DemoFailed("alice's exec was allowed after the grant expired")
    narrator.say(f"DENIED: {_message(answer)}")


async def _approve(
    webhook: Webhook, request: Json, who: tuple[str, tuple[str, ...]], comment: str
) -> tuple[Json, Json]:
    """An approver's status patch, through admission: what `kubectl jit approve` sends."""
    new = json.loads(json.dumps(request))
    new.setdefault("status", {}).setdefault("approvals", []).append(
        {"decision": "Approve", "comment": comment}
    )
    review = access_request_review(
        "UPDATE", user=who[0], groups=who[1], obj=new, old=request, sub_resource="status"
    )
    return await webhook.admit(review)


async def _cli(*args: str) -> tuple[int, str]:
    """Run `jitgate …` as a user would, capturing what it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jitgate.cli.jitgate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    return proc.returncode or 0, output.decode(errors="replace")


def _tamper(audit_dir: Path) -> Path:
    """Rewrite who was allowed in one record, keeping the line valid JSON."""
    for segment in sorted(audit_dir.rglob("*.jsonl")):
        lines = segment.read_text().splitlines(keepends=True)
        for index, line in enumerate(lines):
            record = json.loads(line)
            if record.get("type") == "action.allowed":
                record["actor"]["user"] = "mallory"
                lines[index] = json.dumps(record, separators=(",", ":")) + "\n"
                segment.write_text("".join(lines))
                return segment
    raise DemoFailed("no action.allowed record was found to tamper with")


async def _audit(audit_dir: Path, key_file: Path, narrator: Narrator) -> None:
    log = ["--audit", audit_dir.as_uri(), "--key-file", str(key_file)]
    narrator.title("an auditor verifies the log: jitgate audit verify")
    code, output = await _cli("audit", "verify", *log)
    narrator.say(output)
    if code != 0:
        raise DemoFailed(f"audit verify failed on an untouched log (exit {code})")

    narrator.title("... and reads the trail: jitgate audit query")
    code, output = await _cli("audit", "query", *log)
    narrator.say(output)
    if code != 0:
        raise DemoFailed(f"audit query failed (exit {code})")

    segment = _tamper(audit_dir)
    narrator.title(f"someone edits {segment.relative_to(audit_dir)}: alice becomes mallory")
    code, output = await _cli("audit", "verify", *log)
    narrator.say(output)
    narrator.say(f"exit code {code}")
    if code != 1:
        raise DemoFailed(f"audit verify did not catch the edit (exit {code})")


async def play(out: TextIO, keep: Path | None = None) -> int:
    narrator = Narrator(out)
    out.write(
        "jitgate demo: a local Kubernetes API emulator, the jitgate operator and the jitgate\n"
        "webhook (HTTPS) run as processes. The emulator calls no webhooks, so the demo sends\n"
        "the AdmissionReviews a real API server would send for each kubectl command.\n"
    )
    with tempfile.TemporaryDirectory(prefix="jitgate-demo-") as scratch:
        workdir = keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            narrator.title("starting the emulator, the webhook and the operator")
            async with _stack(workdir, narrator) as (cluster, webhook, audit_dir):
                await _story(cluster, webhook, narrator)
            await _audit(audit_dir, workdir / "audit-hmac.key", narrator)
        except DemoFailed as failure:
            out.write(f"\nDEMO FAILED: {failure}\n")
            return 1
    out.write(f"\nDemo complete in {time.monotonic() - narrator.started:.1f}s.\n")
    return 0


def main(keep: Path | None = None) -> int:
    return asyncio.run(play(sys.stdout, keep))
