"""An execution's state as the engine sees it, and what it decides. Plain data, no I/O.

The server loads an ExecutionState from its tables, calls ``decide``, and applies the Decisions
(with the event that caused them) in one transaction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from noetl.protocol.words import EventType, ExecutionStatus, StepStatus


@dataclass
class StepRun:
    name: str
    status: StepStatus = "pending"
    result: Any = None
    error: str | None = None
    attempts: int = 0


@dataclass
class ExecutionState:
    execution_id: str
    # The playbook's workload with the payload's keys over it.
    workload: dict[str, Any]
    ctx: dict[str, Any] = field(default_factory=dict)
    # The steps that entered (or are pending), by name; a step that never ran has no entry.
    steps: dict[str, StepRun] = field(default_factory=dict)
    status: ExecutionStatus = "RUNNING"


@dataclass
class Dispatch:
    """A command to create: ``tool`` is the command's ``tool`` object (kind + arguments), rendered
    and ready for a worker, stored exactly like a ``noetl submit`` command's."""

    step: str
    tool: dict[str, Any]


@dataclass
class Event:
    type: EventType
    node_name: str | None
    status: ExecutionStatus
    result: Any = None
    error: str | None = None


@dataclass
class Decisions:
    """What to record, in this order, in the same transaction as the event that caused it."""

    dispatch: list[Dispatch] = field(default_factory=list)
    # Context keys to write (key -> value, the whole value).
    ctx: dict[str, Any] = field(default_factory=dict)
    # Step runs that changed (name -> the new StepRun), in the order they last changed.
    steps: dict[str, StepRun] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # Steps whose running commands must be stopped (their leases revoked): other branches of a
    # failed execution, or every running step of a cancelled one.
    cancel: list[str] = field(default_factory=list)
    final: ExecutionStatus | None = None  # "COMPLETED", "FAILED" or "CANCELLED" when it ends
    error: str | None = None


def apply(state: ExecutionState, decisions: Decisions) -> ExecutionState:
    """The state after ``decisions`` (a new object; ``state`` is not changed). The server does the
    same in SQL; tests and in-memory runs use this."""
    steps = {name: replace(run) for name, run in state.steps.items()}
    steps.update({name: replace(run) for name, run in decisions.steps.items()})
    return ExecutionState(
        execution_id=state.execution_id,
        workload=copy.deepcopy(state.workload),
        ctx={**copy.deepcopy(state.ctx), **copy.deepcopy(decisions.ctx)},
        steps=steps,
        status=decisions.final or state.status,
    )
