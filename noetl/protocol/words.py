"""The words of the domain, each declared once: statuses (command, execution, step) and event types.

The SQL CHECK constraints in ``noetl.server.migrations`` spell them too (a migration is history and
never changes); a test reads the constraints from a real database and checks they equal these.
"""

from __future__ import annotations

from typing import Literal, get_args

# "cancelled": a command of a cancelled (or failed) playbook execution; its worker loses the lease.
Status = Literal["pending", "claimed", "completed", "failed", "dead", "cancelled"]
STATUSES: tuple[Status, ...] = get_args(Status)
# A command in one of these states never changes again.
FINISHED: tuple[Status, ...] = ("completed", "failed", "dead", "cancelled")

# What a worker reports about the attempt it holds.
WorkerEvent = Literal["started", "progress", "completed", "failed"]
# The events that end an attempt: the command takes the event's name as its status.
FINAL_EVENTS: tuple[WorkerEvent, ...] = ("completed", "failed")

WorkerState = Literal["online", "offline"]
WORKER_STATES: tuple[WorkerState, ...] = get_args(WorkerState)

# A playbook execution's status (upper case, as NoETL reports it; `noetl submit` executions use them too).
ExecutionStatus = Literal["RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
EXECUTION_STATUSES: tuple[ExecutionStatus, ...] = get_args(ExecutionStatus)
# An execution in one of these states never changes again.
EXECUTION_FINISHED: tuple[ExecutionStatus, ...] = ("COMPLETED", "FAILED", "CANCELLED")

# The events of a playbook execution, in NoETL's words; ``node_name`` is the step.
EventType = Literal[
    "playbook.initialized",
    "step.enter",
    "call.done",
    "call.error",
    # An attempt that a policy retries (the worker reports it; payload: attempt, error, delay, task).
    "call.retry",
    "step.exit",
    "loop.done",
    "workflow.completed",
    "workflow.failed",
    "playbook.completed",
    "playbook.failed",
    "execution.cancelled",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

# Where one step of an execution stands.
# "cancelled": stopped by a cancel, or because another branch failed the execution.
StepStatus = Literal["pending", "running", "done", "failed", "skipped", "cancelled"]
STEP_STATUSES: tuple[StepStatus, ...] = get_args(StepStatus)
# A step run in one of these states has ended (a loop step of part 2 may still run again).
STEP_FINISHED: tuple[StepStatus, ...] = ("done", "failed", "skipped", "cancelled")

# Most items in one batched request of a worker (claims, events: docs/api.md "Batches"). Here, not
# in ``types``: the worker reads it before it may import pydantic (tests/integration/test_start_imports.py).
BATCH_LIMIT = 1000

# Chained dispatch (docs/api.md "Chained dispatch"): how many commands a worker may take in the
# answer to the final event of one it ran (``take`` in the event: the slot that command frees).
TAKE_LIMIT = 1
