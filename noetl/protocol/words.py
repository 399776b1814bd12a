"""The words of the domain, each declared once: command statuses and worker event types.

The SQL CHECK constraints in ``noetl.server.migrations`` spell them too (a migration is history and
never changes); a test reads the constraints from a real database and checks they equal these.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["pending", "claimed", "completed", "failed", "dead"]
STATUSES: tuple[Status, ...] = get_args(Status)
# A command in one of these states never changes again.
FINISHED: tuple[Status, ...] = ("completed", "failed", "dead")

# What a worker reports about the attempt it holds.
WorkerEvent = Literal["started", "progress", "completed", "failed"]
# The events that end an attempt: the command takes the event's name as its status.
FINAL_EVENTS: tuple[WorkerEvent, ...] = ("completed", "failed")

WorkerState = Literal["online", "offline"]
WORKER_STATES: tuple[WorkerState, ...] = get_args(WorkerState)
