"""The engine's decisions: (playbook, state, event) -> Decisions. Pure: no I/O, no clock.

``start`` begins an execution at the step named ``start``; ``step_finished`` records a step's end,
evaluates its ``set`` and arcs and dispatches the next steps; ``cancel`` stops everything. A step
whose tool is ``noop`` (or that has no tool) finishes at once inside the same decision.
"""

from __future__ import annotations

from typing import Any

from noetl.engine.playbook import Playbook
from noetl.engine.state import Decisions, ExecutionState


def start(pb: Playbook, execution_id: str, payload: dict[str, Any]) -> tuple[ExecutionState, Decisions]:
    """A new execution: the workload is the playbook's with ``payload``'s keys over it. Decisions:
    ``playbook.initialized``, then ``start`` entered (and dispatched, or finished at once)."""
    raise NotImplementedError


def step_finished(
    pb: Playbook, state: ExecutionState, step: str, ok: bool, result: Any, error: str | None
) -> Decisions:
    """The command of ``step`` ended (``ok`` with ``result``, or failed with ``error``).

    Records ``call.done``/``call.error`` and ``step.exit``; on success applies the step's ``set``,
    then its arcs (exclusive: the first true arc; inclusive: every true arc); no ``next`` continues
    at ``end`` when there is one. A failure with no arc to handle it fails the execution, naming
    the step, and cancels the other running steps. ``final`` is set when nothing runs or is pending.
    A report for a step that is not running (a duplicate after a lost lease) decides nothing."""
    raise NotImplementedError


def cancel(pb: Playbook, state: ExecutionState, reason: str | None) -> Decisions:
    """Drop pending steps, stop running ones, ``execution.cancelled``, final ``CANCELLED``."""
    raise NotImplementedError
