"""Parse and validate a NoETL v2 playbook (``apiVersion: noetl.io/v2`` or ``noetl.io/v10``).

Everything that can be known without running is checked here, at registration: a broken playbook
is refused with one line naming the step and the key, instead of failing later at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["exclusive", "inclusive"]


class PlaybookError(ValueError):
    """A playbook that cannot run. ``str(e)`` is ONE line naming the step and the key, e.g.
    ``step 'fetch': next.arcs[1].step: no step named 'nope'``."""


@dataclass(frozen=True)
class Task:
    """One tool call: ``kind`` and the rest of its mapping in ``spec`` (``kind`` included).

    ``name`` is None for a step whose ``tool`` is a single mapping, and the task's name for a
    step whose ``tool`` is a list of tasks."""

    name: str | None
    kind: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class Arc:
    """A transition to ``step``, taken when ``when`` renders true (or is absent); ``set`` writes
    into the context when it is taken."""

    step: str
    when: str | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    desc: str | None
    # Empty: the step has no tool (it finishes at once with its input, like ``noop``).
    tasks: tuple[Task, ...]
    input: dict[str, Any]
    mode: Mode
    arcs: tuple[Arc, ...]
    set: dict[str, Any]
    # Kept as data for part 2 (loops); part 1 refuses to run a step with a loop.
    loop: dict[str, Any] | None = None
    # True when ``tool`` was a list of tasks (run on one worker by the ``tasks`` kind).
    task_list: bool = False


@dataclass(frozen=True)
class WorkbookEntry:
    """A named reusable tool of the ``workbook`` section."""

    name: str
    tool: dict[str, Any]
    expects: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Playbook:
    api_version: str
    name: str
    # ``metadata.path``, else ``metadata.name``: the catalog key.
    path: str
    description: str | None
    workload: dict[str, Any]
    steps: dict[str, Step]  # in file order
    workbook: dict[str, WorkbookEntry]
    content: str


def parse_playbook(text: str) -> Playbook:
    """Parse YAML ``text`` into a Playbook, validating everything registration checks.

    Raises PlaybookError (one line) for: invalid YAML (with its line), a wrong apiVersion or kind,
    no step named ``start``, duplicate step names, an arc to a missing step, an unknown tool kind,
    a template that does not parse, a workbook call to a missing entry."""
    raise NotImplementedError
