"""The NATS contract between server and workers: the notice, its message id, and the stream.

A notice says "command ``command_id`` can be claimed; the claim will be attempt ``attempt``". The
server publishes it with the JetStream message id ``<command_id>:<attempt>``, so a notice
published twice within ``DUPLICATE_WINDOW`` is stored once; a worker only needs the command id.
A notice NATS lost (a purged stream, a restart with an empty store) is published again as
``<command_id>:<attempt>:r<n>``: a new id, so the duplicate window cannot swallow it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import UUID

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType

# What a call to NATS raises when NATS is away or slow: worth retrying, never a bug.
NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers message ids
# The shared durable pull consumer of every worker.
DURABLE = "noetl-workers"


@dataclass(frozen=True)
class Notice:
    """ "Command ``command_id`` can be claimed; the claim will be attempt ``attempt``"."""

    command_id: UUID
    execution_id: UUID
    attempt: int
    republish: int = 0  # 0 for the first notice of the attempt; n for its n-th re-publication

    @property
    def msg_id(self) -> str:
        base = f"{self.command_id}:{self.attempt}"
        return f"{base}:r{self.republish}" if self.republish else base

    def payload(self) -> bytes:
        body = {"command_id": str(self.command_id), "execution_id": str(self.execution_id)}
        return json.dumps({**body, "attempt": self.attempt}).encode()


async def ensure_stream(js: JetStreamContext, name: str, subject: str) -> None:
    """Create the work-queue stream unless it exists (an existing stream is used as it is)."""
    try:
        await js.stream_info(name)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )
    except nats.js.errors.BadRequestError:
        # Another process created it a moment ago with a different configuration: use theirs.
        await js.stream_info(name)


def parse_notice(data: bytes) -> str | None:
    """The command id of a notice, or ``None`` when the notice is malformed."""
    try:
        notice = json.loads(data)
    except ValueError:
        return None
    command_id = notice.get("command_id") if isinstance(notice, dict) else None
    if isinstance(command_id, str) and 0 < len(command_id) <= 200:
        return command_id
    return None
