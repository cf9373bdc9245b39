"""Appends forever from many tasks, printing each acknowledged seq; killed by test_crash.py.

Arguments: the log's URL, the number of tasks, and `process` or `thread`: where the batches
are written and synced (`open_audit_writer(append_process=...)`)."""

from __future__ import annotations

import asyncio
import sys

from jitgate.audit import Action, Actor, AuditEvent, AuditWriter, open_audit_writer


async def appender(writer: AuditWriter, task: int) -> None:
    n = 0
    while True:
        record = await writer.append(
            AuditEvent(
                type="action.allowed",
                actor=Actor(user=f"user-{task}"),
                namespace="prod",
                action=Action(verb="exec", resource="pods", name=f"web-{n}"),
            )
        )
        # Printed only after append returned: this seq was acknowledged as durable.
        sys.stdout.write(f"{record.seq}\n")
        sys.stdout.flush()
        n += 1


async def main(url: str, tasks: int, append_process: bool) -> None:
    async with open_audit_writer(
        url, writer_id="crashy", maintenance_interval=None, append_process=append_process
    ) as writer:
        await asyncio.gather(*(appender(writer, task) for task in range(tasks)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "process"))
