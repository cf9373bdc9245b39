"""Running the operator: the audit writer, the API client, kopf and the side services.

`run()` is what `jitgate operator` calls, and what tests and the demo call in-process::

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(config, clock=clock, stop_flag=stop, ready_flag=ready))
    await ready.wait()
    ...
    stop.set(); await task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import kopf
from jitgate.operator.config import OperatorConfig
from jitgate.operator.handlers import build_registry
from jitgate.operator.kube import KubeApi
from jitgate.operator.metrics import Metrics, serve
from jitgate.operator.notify import Notifier
from jitgate.operator.scheduler import Scheduler
from jitgate.operator.slack.app import SlackApp
from jitgate.operator.workflow import Workflow

from jitgate.audit.connect import open_audit_writer
from jitgate.audit.keys import load_checkpoint_key, load_key
from jitgate.core.clock import SYSTEM_CLOCK, Clock
from jitgate.core.grants import FINALIZER
from jitgate.kube import Credentials, load_credentials

logger = logging.getLogger("jitgate.operator")

Flag = asyncio.Event | threading.Event
STORAGE_PREFIX = "operator.jitgate.dev"
_NOTIFY_DRAIN = 2.0  # seconds to finish queued notifications at shutdown


def settings_for(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    # Our Events are posted with kopf.event(); kopf's own log lines become Events only
    # when they are warnings or errors.
    settings.posting.level = logging.WARNING
    settings.background.cancellation_polling = min(config.poll_interval, 1.0)
    settings.scanning.disabled = not config.dynamic_scanning
    if config.peering:
        settings.peering.name = config.peering
    return settings


async def run(
    config: OperatorConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal, when run from the main thread)."""
    if credentials is None:
        credentials = await asyncio.to_thread(load_credentials, config.kubeconfig)
    key = load_key(config.audit_key_file) if config.audit_key_file else None
    checkpoint_key = (
        load_checkpoint_key(config.checkpoint_key_file) if config.checkpoint_key_file else None
    )
    metrics = Metrics()
    scheduler = Scheduler(clock, config.poll_interval)
    notifier = Notifier(config.notify) if config.notify else None
    kube = KubeApi(credentials)
    async with open_audit_writer(
        config.audit_url,
        writer_id=config.writer,
        key=key,
        clock=clock,
        checkpoint_key=checkpoint_key,
        witnesses=config.witnesses,
        witness_ca=config.witness_ca,
    ) as audit:
        slack = (
            SlackApp(config.slack, clock=clock, kube=kube, audit=audit) if config.slack else None
        )
        workflow = Workflow(
            config=config,
            clock=clock,
            kube=kube,
            audit=audit,
            metrics=metrics,
            notifier=notifier,
            channels=(slack,) if slack else (),
        )
        registry = build_registry(workflow, scheduler, credentials)
        # Started before kopf, so kopf does not take them for its own hung tasks at exit.
        ticker = asyncio.create_task(scheduler.run(), name="jitgate-scheduler")
        if notifier is not None:
            notifier.start()
        if slack is not None:
            await slack.start()
        server = None
        if config.metrics_port is not None:
            server = await serve(metrics, config.metrics_host, config.metrics_port)
        try:
            await kopf.operator(
                registry=registry,
                settings=settings_for(config),
                standalone=True if config.standalone else None,
                peering_name=config.peering,
                priority=config.priority,
                liveness_endpoint=config.liveness,
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if notifier is not None:
                await notifier.drain(_NOTIFY_DRAIN)
                await notifier.close()
            if slack is not None:
                await slack.drain(_NOTIFY_DRAIN)
                await slack.close()
            if server is not None:
                await server.cleanup()
            await kube.close()
