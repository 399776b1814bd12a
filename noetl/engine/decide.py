"""The engine's decisions: (playbook, state, event) -> Decisions. Pure: no I/O, no clock.

``start`` begins an execution at the step named ``start``; ``step_finished`` records a step's end,
applies its ``set``, evaluates its arcs and enters the next steps; ``cancel`` stops everything. A
step whose tool is ``noop`` (or that has no tool) finishes at once inside the same decision, so one
call may walk several steps. The caller's state is never changed: ``state.apply`` gives the next one.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import replace
from typing import Any

from noetl.engine import calls, templates
from noetl.engine.playbook import Arc, Playbook, Step, Task, WorkbookEntry
from noetl.engine.state import Decisions, Dispatch, Event, ExecutionState, StepRun
from noetl.engine.templates import TemplateError
from noetl.protocol.words import EventType, ExecutionStatus

# Steps without a tool that one decision may walk through; more means a cycle that never waits.
MAX_STEPS_PER_DECISION = 10_000


class _StepFailed(Exception):
    """A step that fails before (or instead of) running its tool; the message is one line."""


def start(pb: Playbook, execution_id: str, payload: dict[str, Any]) -> tuple[ExecutionState, Decisions]:
    """A new execution: the workload is the playbook's with ``payload``'s keys over it. Returns the
    initial state (nothing entered yet) and the decisions: ``playbook.initialized``, then ``start``
    entered (dispatched, or finished at once when it has no tool or a ``noop``)."""
    state = ExecutionState(
        execution_id=execution_id, workload={**copy.deepcopy(pb.workload), **copy.deepcopy(payload)}
    )
    run = _Run(pb, state)
    run.event("playbook.initialized", None, "RUNNING", result={"workload": state.workload})
    run.queue.append(("enter", "start"))
    run.drain()
    return state, run.out


def step_finished(
    pb: Playbook,
    state: ExecutionState,
    step: str,
    ok: bool,
    result: Any,
    error: str | None,
    writes: dict[str, Any] | None = None,
) -> Decisions:
    """The command (or child execution) of ``step`` ended (``ok`` with ``result``, or failed with
    ``error``). ``writes`` are the context writes of the worker's policy ``set`` (the ``ctx`` of
    the worker's report), applied first.

    Records ``call.done``/``call.error`` and ``step.exit``; on success applies the step's ``set``,
    then its arcs (exclusive: the first true arc; inclusive: every true arc); no ``next`` continues
    at ``end`` when there is one. A failure with no arc to handle it fails the execution, naming
    the step, and cancels the other running steps. ``final`` is set when nothing runs or is pending.
    A report for a step that is not running (a duplicate after a lost lease) decides nothing."""
    current = state.steps.get(step)
    if state.status != "RUNNING" or current is None or current.status != "running" or step not in pb.steps:
        return Decisions()
    run = _Run(pb, state)
    run.queue.append(("finish", step, ok, result, error, True))
    run.drain()
    return run.out


def iteration_finished(
    pb: Playbook,
    state: ExecutionState,
    step: str,
    index: int,
    ok: bool,
    result: Any,
    error: str | None,
    writes: dict[str, Any] | None = None,
) -> Decisions:
    """Iteration ``index`` of loop step ``step`` ended. O(1) in the loop's size: records
    ``call.done``/``call.error`` (with ``iteration``) and the result (``Decisions.iterations``),
    updates the step's ``LoopRun`` counters, dispatches the next iteration whose item is in
    ``LoopRun.next_items``; a failed iteration fails the step (the other iterations are cancelled);
    after the last one, ``Decisions.collect`` names the step (see ``loop_done``). The server calls
    this once per iteration (its command's first final report)."""
    raise NotImplementedError


def loop_done(pb: Playbook, state: ExecutionState, step: str, results: list[Any]) -> Decisions:
    """Every iteration of ``step`` ended well: ``results`` in item order become its result;
    ``loop.done``, then the step ends as any step does (``set``, arcs, ``step.exit``)."""
    raise NotImplementedError


def cancel(pb: Playbook, state: ExecutionState, reason: str | None) -> Decisions:
    """Drop pending steps, stop running ones (``Decisions.cancel``), ``execution.cancelled``,
    final ``CANCELLED``. An execution that already ended decides nothing."""
    if state.status != "RUNNING":
        return Decisions()
    run = _Run(pb, state)
    why = f"cancelled: {reason}" if reason else "cancelled"
    run.stop_all(why)
    run.event("execution.cancelled", None, "CANCELLED", error=reason)
    run.out.final = "CANCELLED"
    run.out.error = why
    return run.out


class _Run:
    """One decision in the making: a private copy of the state, and what changed."""

    def __init__(self, pb: Playbook, state: ExecutionState) -> None:
        self.pb = pb
        self.execution_id = state.execution_id
        self.workload = state.workload
        self.ctx = dict(state.ctx)
        self.steps = {name: replace(run) for name, run in state.steps.items()}
        self.out = Decisions()
        self.queue: deque[tuple[Any, ...]] = deque()
        self.walked = 0
        self.last_result: Any = None

    # -- recording ---------------------------------------------------------------------------

    def event(
        self,
        kind: EventType,
        step: str | None,
        status: ExecutionStatus,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        self.out.events.append(Event(type=kind, node_name=step, status=status, result=result, error=error))

    def put(self, run: StepRun) -> None:
        self.steps[run.name] = run
        # Re-inserted, so that Decisions.steps lists the runs in the order they last changed
        # (the last "done" one is the step that finished last).
        self.out.steps.pop(run.name, None)
        self.out.steps[run.name] = run

    def write(self, values: dict[str, Any]) -> None:
        """Context writes of a ``set``: ``ctx.``, ``iter.`` and ``step.`` are scope words (a loop's
        ``iter.`` scope comes with part 2; until then it is the execution's context)."""
        for key, value in values.items():
            scope, dot, bare = key.partition(".")
            name = bare if dot and scope in ("ctx", "iter", "step") else key
            self.ctx[name] = value
            self.out.ctx[name] = value

    # -- scope ---------------------------------------------------------------------------------

    def scope(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        results = {name: run.result for name, run in self.steps.items() if run.status == "done"}
        return templates.make_scope(
            execution_id=self.execution_id,
            workload=self.workload,
            ctx=self.ctx,
            results=results,
            not_run=[name for name in self.pb.steps if name not in results],
            extra=extra,
        )

    def frame(self) -> dict[str, Any]:
        """The scope as plain JSON, for the worker (task lists render their later tasks there)."""
        results = {name: run.result for name, run in self.steps.items() if run.status == "done"}
        return {
            "execution_id": self.execution_id,
            "workload": self.workload,
            "ctx": dict(self.ctx),  # a copy: later writes of this decision are not this command's
            "results": results,
            "not_run": [name for name in self.pb.steps if name not in results],
        }

    # -- the walk --------------------------------------------------------------------------------

    def drain(self) -> None:
        while self.out.final is None:
            if not self.queue:
                end = self.steps.get("end")
                if end is None or end.status != "pending" or self.busy():
                    break
                self.queue.append(("enter", "end", True))
            action, name, *rest = self.queue.popleft()
            if action == "enter":
                self.enter(name, *rest)
            else:
                self.finish(name, *rest)
        if self.out.final is None and not any(
            r.status in ("running", "pending") for r in self.steps.values()
        ):
            self.event("workflow.completed", None, "COMPLETED")
            self.event("playbook.completed", None, "COMPLETED", result=self.last_result)
            self.out.final = "COMPLETED"

    def busy(self) -> bool:
        """Some other branch still runs, or is about to (queued in this decision)."""
        queued = any(item[0] == "enter" and item[1] != "end" for item in self.queue)
        return queued or any(run.status == "running" for run in self.steps.values())

    def enter(self, name: str, release: bool = False) -> None:
        previous = self.steps.get(name)
        if previous is not None and (
            previous.status == "running" or (previous.status == "pending" and not release)
        ):
            return  # already in flight: a second arc to it does not run it twice (fan-in is part 2)
        if name == "end" and not release and self.busy():
            # `end` joins the branches: it runs once, when nothing else is running.
            attempts = previous.attempts if previous else 0
            self.put(StepRun(name=name, status="pending", attempts=attempts))
            return
        self.walked += 1
        if self.walked > MAX_STEPS_PER_DECISION:
            self.put(
                StepRun(name=name, status="running", attempts=(previous.attempts if previous else 0) + 1)
            )
            message = f"more than {MAX_STEPS_PER_DECISION} steps ran without a tool in one go (a cycle?)"
            self.queue.appendleft(("finish", name, False, None, message, False))
            return
        self.put(StepRun(name=name, status="running", attempts=(previous.attempts if previous else 0) + 1))
        self.event("step.enter", name, "RUNNING")
        step = self.pb.steps[name]
        try:
            tool, now = self.prepare(step)
        except (TemplateError, calls.CallError, _StepFailed) as exc:
            self.queue.appendleft(("finish", name, False, None, str(exc), False))
            return
        if tool is None:
            # No tool, or a noop: the result is the input; a noop counts as a call.
            self.queue.appendleft(("finish", name, True, now, None, bool(step.tasks)))
        else:
            self.out.dispatch.append(Dispatch(step=name, tool=tool))

    def prepare(self, step: Step) -> tuple[dict[str, Any] | None, Any]:
        """The command's tool for ``step``, or (None, result) when it finishes at once."""
        scope = self.scope()
        step_input = templates.render(step.input, scope, "input")
        if not step.tasks:
            return None, step_input
        if step.task_list:
            tasks = [self.resolve_task(task) for task in step.tasks]
            return {"kind": "tasks", "tasks": tasks, "input": step_input, "scope": self.frame()}, None
        spec, entry = self.resolve(step.tasks[0])
        call = calls.prepare(spec, scope, step_input, self.frame())
        if entry is not None:
            missing = [key for key in entry.expects if key not in call.input]
            if missing:
                raise _StepFailed(f"workbook '{entry.name}': assert.expects: no input key '{missing[0]}'")
        return call.tool, call.input

    def resolve(self, task: Task) -> tuple[dict[str, Any], WorkbookEntry | None]:
        """A workbook call becomes its entry's tool, the call's input over the entry's."""
        if task.kind != "workbook":
            return dict(task.spec), None
        entry = self.pb.workbook[task.spec["name"]]
        tool = dict(entry.tool)
        tool["input"] = {**(tool.get("input") or {}), **(task.spec.get("input") or {})}
        return tool, entry

    def resolve_task(self, task: Task) -> dict[str, Any]:
        spec, entry = self.resolve(task)
        resolved: dict[str, Any] = {"name": task.name, **spec}
        if entry is not None and (entry.expects or entry.returns):
            resolved["assert"] = {"expects": list(entry.expects), "returns": list(entry.returns)}
        return resolved

    def finish(self, name: str, ok: bool, result: Any, error: str | None, call: bool) -> None:
        run = self.steps.get(name)
        if run is None or run.status != "running":
            return
        step = self.pb.steps[name]
        if ok:
            missing = self.missing_returns(step, result)
            if missing is not None:
                ok, error = False, missing
        if call:
            if ok:
                self.event("call.done", name, "COMPLETED", result=result)
            else:
                self.event("call.error", name, "FAILED", error=error)
        if ok:
            self.succeeded(step, run, result)
        else:
            self.failed(step, run, error or "failed", result)

    def missing_returns(self, step: Step, result: Any) -> str | None:
        if step.task_list or not step.tasks or step.tasks[0].kind != "workbook":
            return None
        entry = self.pb.workbook[step.tasks[0].spec["name"]]
        for key in entry.returns:
            if not isinstance(result, dict) or key not in result:
                return f"workbook '{entry.name}': assert.returns: the result has no key '{key}'"
        return None

    def succeeded(self, step: Step, run: StepRun, result: Any) -> None:
        self.put(replace(run, status="done", result=result, error=None))
        before = (dict(self.ctx), dict(self.out.ctx))
        try:
            self.write(templates.render(step.set, self.scope(), "set"))
            output = {"status": "ok", "data": result, "error": None}
            scope = self.scope({"event": {"name": "call.done", "step": step.name}, "output": output})
            arcs = self.take(step, scope, failing=False)
            writes = {}
            for arc in arcs:
                writes.update(templates.render(arc.set, scope, f"{arc.label}.set"))
        except TemplateError as exc:
            self.ctx, self.out.ctx = before  # a step that fails writes nothing
            self.failed(step, run, str(exc), result, route=False)
            return
        self.write(writes)
        self.last_result = result
        self.event("step.exit", step.name, "COMPLETED", result=result)
        for arc in arcs:
            self.queue.append(("enter", arc.step))

    def take(self, step: Step, scope: dict[str, Any], *, failing: bool) -> list[Arc]:
        """The arcs taken: exclusive, the first true one; inclusive, every true one. On a failure
        only an arc with a true ``when`` handles it (an arc without ``when`` is the success path)."""
        if not step.arcs:
            if failing or step.name == "end" or "end" not in self.pb.steps:
                return []
            return [Arc(step="end", label="next")]
        taken = []
        for arc in step.arcs:
            hit = not failing if arc.when is None else templates.is_true(arc.when, scope, f"{arc.label}.when")
            if hit:
                taken.append(arc)
                if step.mode == "exclusive":
                    break
        return taken

    def failed(self, step: Step, run: StepRun, error: str, result: Any, *, route: bool = True) -> None:
        self.put(replace(run, status="failed", result=None, error=error))
        self.event("step.exit", step.name, "FAILED", error=error)
        arcs: list[Arc] = []
        note = ""
        if route:
            output = {"status": "error", "data": result, "error": error}
            extra = {"event": {"name": "call.error", "step": step.name}, "output": output, "error": error}
            scope = self.scope(extra)
            try:
                arcs = self.take(step, scope, failing=True)
                writes = {}
                for arc in arcs:
                    writes.update(templates.render(arc.set, scope, f"{arc.label}.set"))
            except TemplateError as exc:
                arcs, note = [], f" (and {exc})"
            else:
                self.write(writes)
        if arcs:
            for arc in arcs:
                self.queue.append(("enter", arc.step))
            return
        message = f"step '{step.name}' failed: {error}{note}"
        self.stop_all(f"cancelled: step '{step.name}' failed")
        self.event("workflow.failed", None, "FAILED", error=message)
        self.event("playbook.failed", None, "FAILED", error=message)
        self.out.final = "FAILED"
        self.out.error = message

    def stop_all(self, why: str) -> None:
        for name, other in list(self.steps.items()):
            if other.status in ("running", "pending"):
                if other.status == "running":
                    self.out.cancel.append(name)
                self.put(replace(other, status="cancelled", error=why))
        self.queue.clear()
