"""A playbook run in memory for the engine's unit tests: the decisions applied to a state, as the
server applies them to its tables, with the tests playing the workers."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from noetl.engine import decide
from noetl.engine.playbook import Playbook, parse_playbook
from noetl.engine.state import Decisions, Dispatch, Event, ExecutionState, apply

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

    def _apply(self, decisions: Decisions) -> Decisions:
        assert self.state is not None
        self.state = apply(self.state, decisions)
        self.events.extend(decisions.events)
        self.decisions.append(decisions)
        for name in decisions.cancel:
            self.running.pop(name, None)
        for dispatch in decisions.dispatch:
            assert dispatch.step not in self.running, f"{dispatch.step} dispatched twice"
            self.running[dispatch.step] = dispatch
        return decisions

    def start(self, payload: dict[str, Any] | None = None) -> Decisions:
        self.state, decisions = decide.start(self.pb, "exec-1", payload or {})
        return self._apply(decisions)

    def finish(self, step: str, result: Any = None, error: str | None = None) -> Decisions:
        assert self.state is not None
        self.running.pop(step, None)
        return self._apply(decide.step_finished(self.pb, self.state, step, error is None, result, error))

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
