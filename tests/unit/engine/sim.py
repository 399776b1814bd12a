"""A playbook run in memory for the engine's unit tests: the decisions applied to a state, as the
server applies them to its tables, with the tests playing the workers."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from noetl.engine import decide
from noetl.engine.playbook import Playbook, parse_playbook
from noetl.engine.state import ChildStart, Decisions, Dispatch, Event, ExecutionState, apply

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: sim}\n"


def playbook(body: str) -> Playbook:
    return parse_playbook(HEAD + textwrap.dedent(body))


@dataclass
class Sim:
    pb: Playbook
    state: ExecutionState | None = None
    events: list[Event] = field(default_factory=list)
    decisions: list[Decisions] = field(default_factory=list)
    # Dispatched commands not finished yet, by step.
    running: dict[str, Dispatch] = field(default_factory=dict)
    # A loop's iterations in flight, by (step, index); its stored items and results, as the server's
    # tables hold them.
    iterations: dict[tuple[str, int], Dispatch] = field(default_factory=dict)
    items: dict[str, list[Any]] = field(default_factory=dict)
    results: dict[str, dict[int, Any]] = field(default_factory=dict)
    children: list[ChildStart] = field(default_factory=list)

    def _apply(self, decisions: Decisions) -> Decisions:
        assert self.state is not None
        self.state = apply(self.state, decisions)
        self.events.extend(decisions.events)
        self.decisions.append(decisions)
        for name in decisions.cancel:
            self.running.pop(name, None)
            for key in [key for key in self.iterations if key[0] == name]:
                del self.iterations[key]
        for loop in decisions.loops:
            self.items[loop.step] = list(loop.items)
            self.results[loop.step] = {}
        for end in decisions.iterations:
            assert end.index not in self.results[end.step], f"{end.step}[{end.index}] ended twice"
            self.results[end.step][end.index] = end.result
        for dispatch in decisions.dispatch:
            if dispatch.iteration is not None:
                key = (dispatch.step, dispatch.iteration)
                assert key not in self.iterations, f"{key} dispatched twice"
                self.iterations[key] = dispatch
                continue
            assert dispatch.step not in self.running, f"{dispatch.step} dispatched twice"
            self.running[dispatch.step] = dispatch
        self.children.extend(decisions.children)
        if decisions.collect is not None:
            # The server: the results in item order, then loop_done in the same transaction.
            step = decisions.collect
            ordered = [self.results[step][i] for i in range(len(self.items[step]))]
            more = decide.loop_done(self.pb, self.state, step, ordered)
            self.state = apply(self.state, more)
            self.events.extend(more.events)
            self.decisions.append(more)
            for dispatch in more.dispatch:
                self.running[dispatch.step] = dispatch
            self.children.extend(more.children)
            merged = Decisions(
                dispatch=decisions.dispatch + more.dispatch,
                ctx={**decisions.ctx, **more.ctx},
                steps={**decisions.steps, **more.steps},
                events=decisions.events + more.events,
                cancel=decisions.cancel + more.cancel,
                final=more.final,
                error=more.error,
                children=decisions.children + more.children,
                iterations=decisions.iterations,
            )
            return merged
        return decisions

    def finish_iteration(
        self, step: str, index: int, result: Any = None, error: str | None = None, writes: Any = None
    ) -> Decisions:
        """The iteration's command ended; the server loads the next item as it would."""
        assert self.state is not None
        self.iterations.pop((step, index), None)
        run = self.state.steps[step]
        assert run.loop is not None
        nxt = run.loop.dispatched
        if nxt < len(self.items.get(step, [])):
            run.loop.next_items = {nxt: self.items[step][nxt]}
        d = decide.iteration_finished(self.pb, self.state, step, index, error is None, result, error, writes)
        return self._apply(d)

    def in_flight(self, step: str) -> list[int]:
        return sorted(i for s, i in self.iterations if s == step)

    def start(self, payload: dict[str, Any] | None = None) -> Decisions:
        self.state, decisions = decide.start(self.pb, "exec-1", payload or {})
        return self._apply(decisions)

    def finish(
        self, step: str, result: Any = None, error: str | None = None, writes: Any = None
    ) -> Decisions:
        assert self.state is not None
        self.running.pop(step, None)
        d = decide.step_finished(self.pb, self.state, step, error is None, result, error, writes)
        return self._apply(d)

    def cancel(self, reason: str | None = None) -> Decisions:
        assert self.state is not None
        return self._apply(decide.cancel(self.pb, self.state, reason))

    def tool(self, step: str) -> dict[str, Any]:
        return self.running[step].tool

    def trail(self) -> list[tuple[str, str | None]]:
        return [(e.type, e.node_name) for e in self.events]

    def entered(self) -> list[str]:
        return [e.node_name or "" for e in self.events if e.type == "step.enter"]

    @property
    def status(self) -> str:
        assert self.state is not None
        return self.state.status
