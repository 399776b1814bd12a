"""Parse and validate a NoETL v2 playbook (``apiVersion: noetl.io/v2`` or ``noetl.io/v10``).

Everything that can be known without running is checked here, at registration: a broken playbook
is refused with one line naming the step and the key, instead of failing later at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from noetl.engine import templates
from noetl.tools.registry import KINDS, TOOL_KINDS

Mode = Literal["exclusive", "inclusive"]
# Makes the one-line error of a step from a message about one of its keys.
Fail = Callable[[str], "PlaybookError"]

API_VERSIONS = ("noetl.io/v2", "noetl.io/v10")
# Kinds the engine handles itself, without a worker's tool: ``noop`` finishes at once with its
# input; ``workbook`` is replaced by the named workbook entry's tool before dispatch.
ENGINE_KINDS = ("noop", "workbook")
# NoETL kinds that come with part 2 (issue 12); refused at registration until then.
LATER_KINDS = {"playbook": "sub-playbooks", "duckdb": "the duckdb tool", "iterator": "loops"}

_STEP_KEYS = ("step", "desc", "tool", "input", "loop", "next", "set", "spec")
_ARC_KEYS = ("step", "when", "set", "spec")
_TOP_KEYS = ("apiVersion", "kind", "metadata", "workload", "workflow", "workbook", "executor", "keychain")


class PlaybookError(ValueError):
    """A playbook that cannot run. ``str(e)`` is ONE line naming the step and the key, e.g.
    ``step 'fetch': next.arcs[1].step: no step named 'nope'``."""


@dataclass(frozen=True)
class Task:
    """One tool call: ``kind`` and its whole mapping in ``spec`` (``kind`` included).

    ``name`` is None for a step whose ``tool`` is a single mapping, and the task's name for a
    step whose ``tool`` is a list of tasks."""

    name: str | None
    kind: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class Arc:
    """A transition to ``step``, taken when ``when`` is true (or absent); ``set`` writes into the
    context when it is taken."""

    step: str
    when: str | bool | None = None
    set: dict[str, Any] = field(default_factory=dict)
    # How the playbook spells this arc (``next``, ``next[1]``, ``next.arcs[1]``), for error lines.
    label: str = "next"


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
    # Kept as data for part 2 (loops); part 1 refuses a step with a loop at registration.
    loop: dict[str, Any] | None = None
    # True when ``tool`` was a list of tasks (run on one worker by the ``tasks`` kind).
    task_list: bool = False


@dataclass(frozen=True)
class WorkbookEntry:
    """A named reusable tool of the ``workbook`` section, with its ``assert`` lists."""

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
    doc = _load(text)
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise PlaybookError(f"apiVersion: expected one of {', '.join(API_VERSIONS)}, got {api_version!r}")
    if doc.get("kind") != "Playbook":
        raise PlaybookError(f"kind: expected 'Playbook', got {doc.get('kind')!r}")
    unknown = [key for key in doc if key not in _TOP_KEYS]
    if unknown:
        raise PlaybookError(f"{unknown[0]}: unknown top-level key; expected one of: {', '.join(_TOP_KEYS)}")
    metadata = _mapping(doc.get("metadata"), "metadata", required=True)
    name = metadata.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PlaybookError("metadata.name: a non-empty string is required")
    path = metadata.get("path", name)
    if not isinstance(path, str) or not path.strip():
        raise PlaybookError("metadata.path: expected a non-empty string")
    description = metadata.get("description")
    if description is not None and not isinstance(description, str):
        raise PlaybookError("metadata.description: expected a string")
    workload = _mapping(doc.get("workload"), "workload")
    workbook = _workbook(doc.get("workbook"))
    steps = _workflow(doc.get("workflow"), workbook)
    return Playbook(
        api_version=api_version,
        name=name,
        path=path.strip(),
        description=description,
        workload=workload,
        steps=steps,
        workbook=workbook,
        content=text,
    )


def _load(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PlaybookError(" ".join(f"invalid YAML{where}: {problem}".split())) from None
    if not isinstance(doc, dict):
        raise PlaybookError(f"the playbook must be a YAML mapping, got {type(doc).__name__}")
    return doc


def _mapping(value: Any, where: str, *, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PlaybookError(f"{where}: expected a mapping, got {_type(value)}")
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise PlaybookError(f"{where}: keys must be strings, got {bad[0]!r}")
    return value


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _templates(value: Any, where: str, step: str | None = None) -> None:
    try:
        templates.check(value, where)
    except templates.TemplateError as exc:
        raise PlaybookError(f"step '{step}': {exc}" if step else str(exc)) from None


def _workbook(value: Any) -> dict[str, WorkbookEntry]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise PlaybookError(f"workbook: expected a list of {{name, tool}}, got {_type(value)}")
    entries: dict[str, WorkbookEntry] = {}
    for i, item in enumerate(value):
        where = f"workbook[{i}]"
        item = _mapping(item, where, required=True)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise PlaybookError(f"{where}.name: a non-empty string is required")
        where = f"workbook '{name}'"
        if name in entries:
            raise PlaybookError(f"{where}: a second entry with this name")
        tool = _mapping(item.get("tool"), f"{where}: tool", required=True)
        kind = _kind(tool.get("kind"), f"{where}: tool.kind")
        if kind == "workbook":
            raise PlaybookError(f"{where}: tool.kind: a workbook entry cannot call the workbook")
        _keys(tool, kind, "tool", _prefixed(where))
        _templates(tool, f"{where}: tool")
        checks = _mapping(item.get("assert"), f"{where}: assert")
        expects = _names(checks.get("expects"), f"{where}: assert.expects")
        returns = _names(checks.get("returns"), f"{where}: assert.returns")
        entries[name] = WorkbookEntry(name=name, tool=dict(tool), expects=expects, returns=returns)
    return entries


def _prefixed(where: str) -> Fail:
    return lambda message: PlaybookError(f"{where}: {message}")


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PlaybookError(f"{where}: expected a list of key names")
    return tuple(value)


def _kind(kind: Any, where: str) -> str:
    if not isinstance(kind, str) or not kind:
        raise PlaybookError(f"{where}: a tool kind is required")
    if kind in LATER_KINDS:
        raise PlaybookError(f"{where}: {kind!r} ({LATER_KINDS[kind]}) is not supported yet")
    known = tuple(dict.fromkeys(k for k in (*TOOL_KINDS, *ENGINE_KINDS) if k != "tasks"))
    if kind not in known:
        kinds = ", ".join(known)
        raise PlaybookError(f"{where}: unknown tool kind {kind!r}; expected one of: {kinds}")
    return kind


def _workflow(value: Any, workbook: Mapping[str, WorkbookEntry]) -> dict[str, Step]:
    if not isinstance(value, list) or not value:
        raise PlaybookError(f"workflow: expected a non-empty list of steps, got {_type(value)}")
    raw: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(value):
        item = _mapping(item, f"workflow[{i}]", required=True)
        name = item.get("step")
        if not isinstance(name, str) or not name.strip():
            raise PlaybookError(f"workflow[{i}].step: a step name (non-empty string) is required")
        if name in raw:
            raise PlaybookError(f"step '{name}': duplicate step name (workflow[{i}])")
        raw[name] = item
    if "start" not in raw:
        raise PlaybookError("workflow: no step named 'start' (the run starts there)")
    steps = {name: _step(name, item, workbook) for name, item in raw.items()}
    for step in steps.values():
        for i, arc in enumerate(step.arcs):
            if arc.step not in steps:
                where = _target_label(raw[step.name].get("next"), arc, i)
                raise PlaybookError(f"step '{step.name}': {where}: no step named '{arc.step}'")
    return steps


def _target_label(next_value: Any, arc: Arc, i: int) -> str:
    """Where an arc's target is spelled: the arc itself when it is a bare name, else its ``step``."""
    items = next_value.get("arcs") if isinstance(next_value, dict) else next_value
    is_name = not isinstance(items, list) or isinstance(items[i], str)
    return arc.label if is_name else f"{arc.label}.step"


def _step(name: str, item: dict[str, Any], workbook: Mapping[str, WorkbookEntry]) -> Step:
    def fail(message: str) -> PlaybookError:
        return PlaybookError(f"step '{name}': {message}")

    unknown = [key for key in item if key not in _STEP_KEYS]
    if unknown:
        raise fail(f"{unknown[0]}: unknown key; expected one of: {', '.join(_STEP_KEYS)}")
    desc = item.get("desc")
    if desc is not None and not isinstance(desc, str):
        raise fail("desc: expected a string")
    try:
        step_input = _mapping(item.get("input"), "input")
        step_set = _set(item.get("set"), "set")
        loop = item.get("loop")
        if loop is not None:
            _mapping(loop, "loop")
    except PlaybookError as exc:
        raise fail(str(exc)) from None
    if loop is not None:
        raise fail("loop: loops are not supported yet")
    tasks, task_list = _tasks(item.get("tool"), workbook, fail)
    mode, arcs = _next(item.get("next"), fail)
    _templates(step_input, "input", name)
    _templates(step_set, "set", name)
    for task in tasks:
        where = "tool" if task.name is None else f"tool '{task.name}'"
        _templates(task.spec, where, name)
    for arc in arcs:
        where = arc.label
        if arc.when is not None:
            try:
                templates.check_condition(arc.when, f"{where}.when")
            except templates.TemplateError as exc:
                raise fail(str(exc)) from None
        _templates(arc.set, f"{where}.set", name)
    return Step(
        name=name,
        desc=desc,
        tasks=tasks,
        input=dict(step_input),
        mode=mode,
        arcs=arcs,
        set=step_set,
        loop=loop,
        task_list=task_list,
    )


def _set(value: Any, where: str) -> dict[str, Any]:
    mapping = _mapping(value, where)
    for key in mapping:
        if not key.strip() or key.endswith(".") or key in ("ctx", "iter", "step"):
            raise PlaybookError(f"{where}: {key!r} is not a context key (write ctx.<key>)")
    return dict(mapping)


def _tasks(value: Any, workbook: Mapping[str, WorkbookEntry], fail: Fail) -> tuple[tuple[Task, ...], bool]:
    if value is None:
        return (), False
    if isinstance(value, dict):
        spec = _tool(value, "tool", workbook, fail)
        return (Task(name=None, kind=spec["kind"], spec=spec),), False
    if not isinstance(value, list) or not value:
        raise fail(f"tool: expected a mapping with `kind` or a non-empty list of tasks, got {_type(value)}")
    tasks: list[Task] = []
    for i, item in enumerate(value):
        where = f"tool[{i}]"
        if not isinstance(item, dict):
            raise fail(f"{where}: expected a mapping with `kind`, got {_type(item)}")
        if "kind" not in item and len(item) == 1:
            # NoETL's labelled form: ``- fetch: {kind: http, ...}``.
            ((task_name, body),) = item.items()
            if not isinstance(body, dict):
                raise fail(f"{where}: expected a mapping with `kind`")
        else:
            task_name = item.get("name", f"task_{i + 1}")
            # A flat workbook task is named after its entry: ``- {kind: workbook, name: greet}``.
            body = item if item.get("kind") == "workbook" else {k: v for k, v in item.items() if k != "name"}
        if not isinstance(task_name, str) or not task_name.isidentifier():
            raise fail(f"{where}.name: expected a name made of letters, digits and _, got {task_name!r}")
        if any(task.name == task_name for task in tasks):
            raise fail(f"{where}.name: a second task named '{task_name}'")
        spec = _tool(body, where, workbook, fail)
        tasks.append(Task(name=task_name, kind=spec["kind"], spec=spec))
    return tuple(tasks), True


def _tool(
    value: dict[str, Any], where: str, workbook: Mapping[str, WorkbookEntry], fail: Fail
) -> dict[str, Any]:
    try:
        spec = _mapping(value, where)
        kind = _kind(spec.get("kind"), f"{where}.kind")
        _mapping(spec.get("input"), f"{where}.input")
    except PlaybookError as exc:
        raise fail(str(exc)) from None
    _keys(spec, kind, where, fail)
    if kind == "workbook":
        entry = spec.get("name")
        if not isinstance(entry, str) or not entry:
            raise fail(f"{where}.name: the workbook entry to run is required")
        if entry not in workbook:
            known = ", ".join(workbook) or "none"
            raise fail(f"{where}.name: no workbook entry named '{entry}' (entries: {known})")
    return dict(spec)


def _keys(spec: Mapping[str, Any], kind: str, where: str, fail: Fail) -> None:
    """A key the kind does not know is refused now, not when a worker gets the command."""
    if "spec" in spec:
        raise fail(f"{where}.spec: policies (spec.policy) are not supported yet")
    if kind == "workbook":
        allowed = {"kind", "name", "input"}
    else:
        model = KINDS[kind].Args
        allowed = {info.alias or name for name, info in model.model_fields.items()} | {"args", "input"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed - {"kind"}))
        raise fail(f"{where}.{unknown[0]}: unknown key for a {kind} tool; expected one of: {expected}")


def _next(value: Any, fail: Fail) -> tuple[Mode, tuple[Arc, ...]]:
    if value is None:
        return "exclusive", ()
    if isinstance(value, str):
        return "exclusive", (Arc(step=value, label="next"),)
    if isinstance(value, list):
        return "exclusive", tuple(_arc(item, f"next[{i}]", fail) for i, item in enumerate(value))
    if not isinstance(value, dict):
        raise fail(f"next: expected a step name, a list or {{spec, arcs}}, got {_type(value)}")
    unknown = [key for key in value if key not in ("spec", "arcs")]
    if unknown:
        raise fail(f"next.{unknown[0]}: unknown key; expected spec and arcs")
    spec = value.get("spec") or {}
    if not isinstance(spec, dict):
        raise fail(f"next.spec: expected a mapping, got {_type(spec)}")
    mode = spec.get("mode", "exclusive")
    if mode not in ("exclusive", "inclusive"):
        raise fail(f"next.spec.mode: expected exclusive or inclusive, got {mode!r}")
    arcs = value.get("arcs")
    if not isinstance(arcs, list):
        raise fail(f"next.arcs: expected a list of {{step, when, set}}, got {_type(arcs)}")
    return mode, tuple(_arc(item, f"next.arcs[{i}]", fail) for i, item in enumerate(arcs))


def _arc(item: Any, where: str, fail: Fail) -> Arc:
    if isinstance(item, str):
        return Arc(step=item, label=where)
    if not isinstance(item, dict):
        raise fail(f"{where}: expected a step name or {{step, when, set}}, got {_type(item)}")
    unknown = [key for key in item if key not in _ARC_KEYS]
    if unknown:
        raise fail(f"{where}.{unknown[0]}: unknown key; expected step, when, set")
    target = item.get("step")
    if not isinstance(target, str) or not target:
        raise fail(f"{where}.step: a step name is required")
    when = item.get("when")
    if when is not None and not isinstance(when, str | bool):
        raise fail(f"{where}.when: expected an expression or true/false, got {_type(when)}")
    try:
        arc_set = _set(item.get("set"), f"{where}.set")
    except PlaybookError as exc:
        raise fail(str(exc)) from None
    return Arc(step=target, when=when, set=arc_set, label=where)
