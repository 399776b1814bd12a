"""The engine's decisions: (playbook, state, event) -> Decisions. Pure: no I/O, no clock.

``start`` begins an execution at the step named ``start``; ``step_finished`` records a step's end,
applies its ``set``, evaluates its arcs and enters the next steps; ``cancel`` stops everything. A
step whose tool is ``noop`` (or that has no tool) finishes at once inside the same decision, so one
call may walk several steps. The caller's state is never changed: ``state.apply`` gives the next one.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from noetl.engine import calls, templates
from noetl.engine.playbook import Arc, Loop, Playbook, Step, Task, WorkbookEntry
from noetl.engine.state import (
    ChildStart,
    Decisions,
    Dispatch,
    Event,
    ExecutionState,
    IterationEnd,
    LoopRun,
    LoopStart,
    StepRun,
)
from noetl.engine.templates import TemplateError
from noetl.protocol.words import EventType, ExecutionStatus

# Steps without a tool that one decision may walk through; more means a cycle that never waits.
MAX_STEPS_PER_DECISION = 10_000


class _StepFailed(Exception):
    """A step that fails before (or instead of) running its tool; the message is one line."""


_PENDING: Any = object()


@dataclass(frozen=True)
class _Launch:
    """How a step (or an iteration) runs: a command's ``tool``, a ``child`` execution, or ``now``:
    its result at once (no tool, or a noop)."""

    tool: dict[str, Any] | None = None
    child: ChildStart | None = None
    now: Any = _PENDING


def _loop_names(step: Step, item: tuple[int, Any] | None) -> dict[str, Any] | None:
    """What an iteration's templates see: the iterator's name, ``iter.<name>``, ``iter._index``
    and ``loop_index``."""
    if item is None or step.loop is None:
        return None
    index, value = item
    name = step.loop.iterator
    return {name: value, "iter": {name: value, "_index": index}, "loop_index": index}


def _limit(loop: Loop, scope: dict[str, Any]) -> int | None:
    """How many iterations may run at once: 1 (sequential), ``max_in_flight`` (rendered when it is
    a template), or None: no limit."""
    if loop.mode == "sequential":
        return 1
    limit = templates.render(loop.max_in_flight, scope, "loop.spec.max_in_flight")
    if isinstance(limit, str) and limit.strip().isdigit():
        limit = int(limit)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise _StepFailed(f"loop.spec.max_in_flight: expected a whole number of 1 or more, got {limit!r}")
    return limit


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _copy(run: StepRun) -> StepRun:
    """A step run that can change without changing the caller's (its loop counters included; the
    loaded items stay out of the decisions)."""
    return replace(run, loop=replace(run.loop, next_items={}) if run.loop is not None else None)


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
    run.write(writes or {})
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
    this once per iteration (its command's first final report); a report for an iteration that
    was not dispatched, of a step that is not running, decides nothing."""
    current = state.steps.get(step)
    if (
        state.status != "RUNNING"
        or current is None
        or current.status != "running"
        or current.loop is None
        or step not in pb.steps
        or not 0 <= index < current.loop.dispatched
        or current.loop.in_flight <= 0
    ):
        return Decisions()
    run = _Run(pb, state)
    run.write(writes or {})
    run.iteration_ended(pb.steps[step], index, ok, result, error)
    run.drain()
    return run.out


def loop_done(pb: Playbook, state: ExecutionState, step: str, results: list[Any]) -> Decisions:
    """Every iteration of ``step`` ended well: ``results`` in item order become its result;
    ``loop.done``, then the step ends as any step does (``set``, arcs, ``step.exit``)."""
    current = state.steps.get(step)
    loop = current.loop if current is not None else None
    if state.status != "RUNNING" or current is None or current.status != "running" or loop is None:
        return Decisions()
    if loop.done != loop.total or len(results) != loop.total:
        raise ValueError(
            f"step {step!r}: loop_done with {len(results)} results, {loop.done}/{loop.total} done"
        )
    run = _Run(pb, state)
    run.loop_finished(pb.steps[step], list(results))
    run.drain()
    return run.out


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
        self.steps = {name: _copy(run) for name, run in state.steps.items()}
        # The items the server loaded for this decision, by loop step (``LoopRun.next_items``).
        self.next_items = {
            name: dict(run.loop.next_items) for name, run in state.steps.items() if run.loop is not None
        }
        self.out = Decisions()
        self.queue: deque[tuple[Any, ...]] = deque()
        self.walked = 0
        self.last_result: Any = None
        # Results of iterations that ran in this decision without a command, by step and index.
        self.inline_results: dict[str, dict[int, Any]] = {}

    # -- recording ---------------------------------------------------------------------------

    def event(
        self,
        kind: EventType,
        step: str | None,
        status: ExecutionStatus,
        result: Any = None,
        error: str | None = None,
        iteration: int | None = None,
    ) -> None:
        self.out.events.append(
            Event(type=kind, node_name=step, status=status, result=result, error=error, iteration=iteration)
        )

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
        """What templates see now; ``extra`` (loop variables, ``output``, ...) last."""
        results = {name: run.result for name, run in self.steps.items() if run.status == "done"}
        return templates.make_scope(
            execution_id=self.execution_id,
            workload=self.workload,
            ctx=self.ctx,
            results=results,
            not_run=[name for name in self.pb.steps if name not in results],
            extra=extra,
        )

    def frame(self, loop: dict[str, Any] | None = None) -> dict[str, Any]:
        """The scope as plain JSON, for the worker (task lists render their later tasks there);
        ``loop``: an iteration's names."""
        results = {name: run.result for name, run in self.steps.items() if run.status == "done"}
        frame = {
            "execution_id": self.execution_id,
            "workload": self.workload,
            "ctx": dict(self.ctx),  # a copy: later writes of this decision are not this command's
            "results": results,
            "not_run": [name for name in self.pb.steps if name not in results],
        }
        if loop:
            frame["loop"] = loop
        return frame

    # -- the walk --------------------------------------------------------------------------------

    def drain(self) -> None:
        while self.out.final is None:
            if not self.queue:
                ready = next((name for name in self.joins() if not self.upstream_active(name)), None)
                if ready is not None:
                    self.queue.append(("enter", ready, True))
                    continue
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

    def joins(self) -> list[str]:
        """Steps waiting for their upstream branches (fan-in), ``end`` aside."""
        return [name for name, run in self.steps.items() if run.status == "pending" and name != "end"]

    def upstream_active(self, name: str) -> bool:
        """Some other step that runs, or is about to enter in this decision, can still lead to
        ``name``: a fan-in waits for it. (A waiting step upstream waits for a running one that
        reaches ``name`` too, so running and queued steps are enough.)"""
        for item in self.queue:
            if item[0] == "enter" and item[1] != name and name in self.pb.reaches.get(item[1], ()):
                return True
        return any(
            other != name and run.status == "running" and name in self.pb.reaches.get(other, ())
            for other, run in self.steps.items()
        )

    def busy(self) -> bool:
        """Some other branch still runs, or is about to (queued in this decision)."""
        queued = any(item[0] == "enter" and item[1] != "end" for item in self.queue)
        return queued or any(run.status == "running" for run in self.steps.values())

    def enter(self, name: str, release: bool = False) -> None:
        previous = self.steps.get(name)
        if previous is not None and (
            previous.status == "running" or (previous.status == "pending" and not release)
        ):
            return  # already in flight, or waiting: a second arc to it does not run it twice
        if not release and self.must_wait(name):
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
        if step.loop is not None:
            self.start_loop(step)
            return
        try:
            launch = self.prepare(step)
        except (TemplateError, calls.CallError, _StepFailed) as exc:
            self.queue.appendleft(("finish", name, False, None, str(exc), False))
            return
        if launch.now is not _PENDING:
            # No tool, or a noop: the result is the input; a noop counts as a call.
            self.queue.appendleft(("finish", name, True, launch.now, None, bool(step.tasks)))
        else:
            self.send(step, launch, None)

    def must_wait(self, name: str) -> bool:
        """``end`` joins every branch: it waits while anything else runs. A step with arcs from
        several steps (a fan-in) waits while a step that can still lead to it runs."""
        if name == "end":
            return self.busy()
        return len(self.pb.sources(name)) > 1 and self.upstream_active(name)

    def send(self, step: Step, launch: _Launch, index: int | None) -> None:
        if launch.child is not None:
            self.out.children.append(replace(launch.child, iteration=index))
        else:
            assert launch.tool is not None
            self.out.dispatch.append(Dispatch(step=step.name, tool=launch.tool, iteration=index))

    def prepare(self, step: Step, item: tuple[int, Any] | None = None) -> _Launch:
        """What running ``step`` (or its iteration ``item`` = (index, value)) takes: a command's
        tool, a child execution, or a result at once (no tool, or a noop)."""
        loop = _loop_names(step, item)
        scope = self.scope(loop)
        step_input = templates.render(step.input, scope, "input")
        if not step.tasks:
            return _Launch(now=step_input)
        if step.task_list:
            tasks = [self.resolve_task(task) for task in step.tasks]
            tool = {"kind": "tasks", "tasks": tasks, "input": step_input, "scope": self.frame(loop)}
            return _Launch(tool=tool)
        spec, entry = self.resolve(step.tasks[0])
        if spec["kind"] == "playbook":
            return _Launch(child=self.child(step, spec, scope, step_input))
        call = calls.prepare(spec, scope, step_input, self.frame(loop))
        if entry is not None:
            missing = [key for key in entry.expects if key not in call.input]
            if missing:
                raise _StepFailed(f"workbook '{entry.name}': assert.expects: no input key '{missing[0]}'")
        if call.tool is None:
            return _Launch(now=call.input)
        return _Launch(tool=call.tool)

    def child(self, step: Step, spec: dict[str, Any], scope: dict[str, Any], step_input: Any) -> ChildStart:
        """A sub-playbook call: its path, version and payload (the tool's input, the step's over it)."""
        path = templates.render(spec["path"], scope, "tool.path")
        version = templates.render(spec.get("version"), scope, "tool.version")
        if not isinstance(path, str) or not path.strip():
            raise _StepFailed(f"tool.path: expected a catalog path, got {path!r}")
        if version == "latest":
            version = None
        elif isinstance(version, str) and version.strip().isdigit():
            version = int(version)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise _StepFailed(f"tool.version: expected a version number or 'latest', got {version!r}")
        payload = {**templates.render(spec.get("input") or {}, scope, "tool.input"), **step_input}
        return ChildStart(step=step.name, path=path.strip(), version=version, payload=payload)

    # -- loops ---------------------------------------------------------------------------------

    def start_loop(self, step: Step) -> None:
        """Render the items once; dispatch the first iterations (a tool-less or noop loop runs
        every iteration here and now)."""
        assert step.loop is not None
        try:
            scope = self.scope()
            items = templates.render(step.loop.items, scope, "loop.in")
            if not isinstance(items, list):
                raise _StepFailed(f"loop.in: expected a list, got {type(items).__name__}: {_short(items)}")
            limit = _limit(step.loop, scope)
        except (TemplateError, _StepFailed) as exc:
            self.queue.appendleft(("finish", step.name, False, None, str(exc), False))
            return
        self.out.loops.append(LoopStart(step=step.name, items=items))
        self.put(replace(self.steps[step.name], loop=LoopRun(total=len(items), max_in_flight=limit)))
        self.fill(step, dict(enumerate(items)))

    def fill(self, step: Step, items: dict[int, Any]) -> None:
        """Dispatch iterations while there are slots and items (O(1) per iteration). An iteration
        that finishes at once (no tool, noop) ends here; the last one ends the loop."""
        loop = self.steps[step.name].loop
        assert loop is not None  # changed in place: this decision's private copy
        while self.steps[step.name].status == "running" and loop.dispatched < loop.total:
            if loop.max_in_flight is not None and loop.in_flight >= loop.max_in_flight:
                return
            index = loop.dispatched
            if index not in items:
                return
            try:
                launch = self.prepare(step, (index, items[index]))
            except (TemplateError, calls.CallError, _StepFailed) as exc:
                self.queue.appendleft(("finish", step.name, False, None, f"iteration {index}: {exc}", False))
                return
            loop.dispatched += 1
            self.put(self.steps[step.name])
            if launch.now is not _PENDING:
                self.iteration_ended(step, index, True, launch.now, None, call=bool(step.tasks), fill=False)
            else:
                self.send(step, launch, index)
        if loop.done == loop.total and self.steps[step.name].status == "running":
            if loop.total == 0 or step.name in self.inline_results:
                now = self.inline_results.pop(step.name, {})
                self.loop_finished(step, [now[i] for i in range(loop.total)])
            else:
                self.out.collect = step.name

    def iteration_ended(
        self,
        step: Step,
        index: int,
        ok: bool,
        result: Any,
        error: str | None,
        *,
        call: bool = True,
        fill: bool = True,
    ) -> None:
        run = self.steps[step.name]
        loop = run.loop
        assert loop is not None  # changed in place: this decision's private copy
        if call:
            if ok:
                self.event("call.done", step.name, "COMPLETED", result=result, iteration=index)
            else:
                self.event("call.error", step.name, "FAILED", error=error, iteration=index)
        self.out.iterations.append(IterationEnd(step.name, index, ok, result if ok else None, error))
        if ok:
            loop.done += 1
        else:
            loop.failed += 1
        self.put(run)
        if not ok:
            self.queue.appendleft(("finish", step.name, False, None, f"iteration {index}: {error}", False))
            return
        if not fill:
            # Ran here and now (no command): its result is kept for loop.done in this decision.
            self.inline_results.setdefault(step.name, {})[index] = result
            return
        self.fill(step, self.next_items.get(step.name, {}))

    def loop_finished(self, step: Step, results: list[Any]) -> None:
        self.event("loop.done", step.name, "COMPLETED", result={"count": len(results)})
        self.queue.appendleft(("finish", step.name, True, results, None, False))

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
        if run.loop is not None and run.loop.in_flight > 0:
            self.out.cancel.append(step.name)  # the loop's other iterations stop
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
