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
class LoopRun:
    """Where a loop step stands: counters only (the columns of ``noetl.loops``), so that an
    iteration's end costs O(1) whatever the loop's size. The items are stored once by the server
    (``Decisions.loops``) and are not part of the state, except ``next_items``: the items from
    index ``dispatched`` on that the server loaded for this decision (the one at ``dispatched``,
    when it exists, is enough: one iteration's end frees one slot). The engine dispatches only
    iterations whose item is there."""

    total: int
    # At most this many iterations run at once; 1 for sequential, None: no limit.
    max_in_flight: int | None = 1
    # Iterations 0 .. dispatched - 1 were dispatched (items in order).
    dispatched: int = 0
    # Iterations that ended well / failed (their results stored, ``Decisions.iterations``).
    done: int = 0
    failed: int = 0
    next_items: dict[int, Any] = field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return self.dispatched - self.done - self.failed


@dataclass
class StepRun:
    name: str
    status: StepStatus = "pending"
    result: Any = None
    error: str | None = None
    attempts: int = 0
    # Set while a loop step runs (and kept when it ended, with its counters).
    loop: LoopRun | None = None


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
    and ready for a worker, stored exactly like a ``noetl submit`` command's. ``iteration`` is the
    loop item's index (``commands.iteration``) for an iteration of a loop step, else None."""

    step: str
    tool: dict[str, Any]
    iteration: int | None = None


@dataclass
class ChildStart:
    """A sub-playbook to start (``tool: {kind: playbook}``): the server creates a child execution of
    the registered playbook ``path`` (``version``: a number, or None for the latest) with
    ``payload`` and ``parent_execution_id`` set, in the same transaction. When the child ends,
    the server reports it to the parent's engine like a command's end: ``step_finished`` (or
    ``iteration_finished`` when ``iteration`` is set) with the child's result, or ok=False with its
    error when it failed or was cancelled."""

    step: str
    path: str
    version: int | None
    payload: dict[str, Any]
    iteration: int | None = None


@dataclass
class LoopStart:
    """A loop step entered: the server stores its rendered ``items`` once (never in an HTTP answer),
    to load the item at ``LoopRun.dispatched`` for later decisions. ``StepRun.loop`` holds its
    counters."""

    step: str
    items: list[Any]


@dataclass
class IterationEnd:
    """One iteration's end, to store by (step, index): at ``loop.done`` the server loads the results
    in index order and gives them to ``decide.loop_done``."""

    step: str
    index: int
    ok: bool
    result: Any = None
    error: str | None = None


@dataclass
class Event:
    type: EventType
    node_name: str | None
    status: ExecutionStatus
    result: Any = None
    error: str | None = None
    # The loop item's index for ``call.done`` / ``call.error`` / ``call.retry`` of an iteration.
    iteration: int | None = None


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
    # Sub-playbooks to start (children of this execution).
    children: list[ChildStart] = field(default_factory=list)
    # Loop steps entered: their items, to store once.
    loops: list[LoopStart] = field(default_factory=list)
    # Iteration results to store.
    iterations: list[IterationEnd] = field(default_factory=list)
    # A loop step whose last iteration just ended: the server loads its iteration results in index
    # order (this decision's ``iterations`` included) and, in the same transaction, applies
    # ``decide.loop_done(pb, apply(state, these decisions), step, results)`` as well.
    collect: str | None = None


def apply(state: ExecutionState, decisions: Decisions) -> ExecutionState:
    """The state after ``decisions`` (a new object; ``state`` is not changed). The server does the
    same in SQL; tests and in-memory runs use this."""
    steps = {name: _copy(run) for name, run in state.steps.items()}
    steps.update({name: _copy(run) for name, run in decisions.steps.items()})
    return ExecutionState(
        execution_id=state.execution_id,
        workload=copy.deepcopy(state.workload),
        ctx={**copy.deepcopy(state.ctx), **copy.deepcopy(decisions.ctx)},
        steps=steps,
        status=decisions.final or state.status,
    )


def _copy(run: StepRun) -> StepRun:
    return replace(run, loop=replace(run.loop, next_items={}) if run.loop is not None else None)
