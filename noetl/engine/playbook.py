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
from noetl.tools import policy
from noetl.tools.registry import KINDS, TOOL_KINDS, missing_extra

Mode = Literal["exclusive", "inclusive"]
# Makes the one-line error of a step from a message about one of its keys.
Fail = Callable[[str], "PlaybookError"]

API_VERSIONS = ("noetl.io/v2", "noetl.io/v10")
# Kinds the engine handles itself, without a worker's tool: ``noop`` finishes at once with its
# input; ``workbook`` is replaced by the named workbook entry's tool before dispatch; ``playbook``
# starts a registered playbook as a child execution.
ENGINE_KINDS = ("noop", "workbook", "playbook")
# What each engine kind accepts (the worker's kinds declare theirs in their Args model).
_ENGINE_KEYS = {"workbook": {"kind", "name", "input"}, "playbook": {"kind", "path", "version", "input"}}
# NoETL kinds that are not built here; refused at registration.
LATER_KINDS = {"iterator": "NoETL's iterator tool; write `loop:` on the step"}
LoopMode = Literal["sequential", "parallel"]

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
class Loop:
    """``loop: {in, iterator, spec: {mode, max_in_flight}}``: the step's tool runs once per item of
    ``items`` (a template rendered when the step starts, or a literal list)."""

    items: Any
    iterator: str
    mode: LoopMode = "sequential"
    # Parallel only: how many iterations run at once (None: all); a template is rendered when the
    # step starts.
    max_in_flight: int | str | None = None


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
    loop: Loop | None = None
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
    # The steps each step's arcs lead to, and every step reachable from it (both in file order;
    # a step without ``next`` leads to ``end`` when there is one). Fan-in uses them.
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reaches: dict[str, frozenset[str]] = field(default_factory=dict)

    def sources(self, name: str) -> tuple[str, ...]:
        """The steps with an arc to ``name``."""
        return tuple(src for src, dests in self.targets.items() if name in dests)


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
    targets = _targets(steps)
    return Playbook(
        api_version=api_version,
        name=name,
        path=path.strip(),
        description=description,
        workload=workload,
        steps=steps,
        workbook=workbook,
        content=text,
        targets=targets,
        reaches=_reaches(targets),
    )


def _targets(steps: Mapping[str, Step]) -> dict[str, tuple[str, ...]]:
    targets = {}
    for name, step in steps.items():
        dests = tuple(dict.fromkeys(arc.step for arc in step.arcs))
        if not dests and name != "end" and "end" in steps:
            dests = ("end",)
        targets[name] = dests
    return targets


def _reaches(targets: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    reaches = {}
    for name in targets:
        seen: set[str] = set()
        stack = list(targets[name])
        while stack:
            dest = stack.pop()
            if dest not in seen:
                seen.add(dest)
                stack.extend(targets.get(dest, ()))
        reaches[name] = frozenset(seen)
    return reaches


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
        raise PlaybookError(f"{where}: {kind!r} ({LATER_KINDS[kind]}) is not supported")
    missing = missing_extra(kind)
    if missing is not None:
        raise PlaybookError(f"{where}: {missing}")
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
        loop = _loop(item.get("loop"))
    except PlaybookError as exc:
        raise fail(str(exc)) from None
    tasks, task_list = _tasks(item.get("tool"), workbook, fail)
    if task_list:
        for task in tasks:
            if task.kind == "playbook":
                raise fail(f"tool '{task.name}'.kind: a sub-playbook is a step's tool, not a task of a list")
            to = _jumps(task.spec)
            if to is not None and to not in {t.name for t in tasks}:
                raise fail(f"tool '{task.name}'.spec: jump to '{to}': no task of this list has that name")
    mode, arcs = _next(item.get("next"), fail)
    _templates(step_input, "input", name)
    _templates(step_set, "set", name)
    if loop is not None:
        _templates(loop.items, "loop.in", name)
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


_LOOP_KEYS = ("in", "iterator", "spec", "mode", "max_in_flight")


def _loop(value: Any) -> Loop | None:
    if value is None:
        return None
    loop = _mapping(value, "loop")
    unknown = [key for key in loop if key not in _LOOP_KEYS]
    if unknown:
        raise PlaybookError(f"loop.{unknown[0]}: unknown key; expected in, iterator, spec")
    if "in" not in loop:
        raise PlaybookError("loop.in: the list to loop over is required (a template or a list)")
    items = loop["in"]
    if not isinstance(items, str | list):
        raise PlaybookError(f"loop.in: expected a template or a list, got {_type(items)}")
    iterator = loop.get("iterator", "item")
    if not isinstance(iterator, str) or not iterator.isidentifier() or iterator in _RESERVED:
        raise PlaybookError(f"loop.iterator: expected a name made of letters, digits and _, got {iterator!r}")
    spec = _mapping(loop.get("spec"), "loop.spec")
    unknown = [key for key in spec if key not in ("mode", "max_in_flight")]
    if unknown:
        raise PlaybookError(f"loop.spec.{unknown[0]}: unknown key; expected mode, max_in_flight")
    # NoETL also accepts them beside `in`.
    mode = spec.get("mode", loop.get("mode", "sequential"))
    if mode not in ("sequential", "parallel"):
        raise PlaybookError(f"loop.spec.mode: expected sequential or parallel, got {mode!r}")
    limit = spec.get("max_in_flight", loop.get("max_in_flight"))
    if isinstance(limit, str) and templates.has_markup(limit):
        _templates(limit, "loop.spec.max_in_flight")
    elif limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PlaybookError(f"loop.spec.max_in_flight: expected a whole number of 1 or more, got {limit!r}")
    return Loop(items=items, iterator=iterator, mode=mode, max_in_flight=limit)


# Names a loop's iterator cannot take: the scope words templates already use.
_RESERVED = ("iter", "ctx", "workload", "loop_index", "execution_id", "job", "input", "output", "event")


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
    if kind == "playbook":
        path, version = spec.get("path"), spec.get("version")
        if not isinstance(path, str) or not path.strip():
            raise fail(f"{where}.path: the catalog path of the playbook to run is required")
        if version is not None and not (
            (isinstance(version, int) and not isinstance(version, bool) and version >= 1)
            or version == "latest"
            or (isinstance(version, str) and templates.has_markup(version))
        ):
            raise fail(f"{where}.version: expected a version number or 'latest', got {version!r}")
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
        if kind in _ENGINE_KEYS:
            raise fail(f"{where}.spec: a {kind} call has no policy (policies run on a worker's tool)")
        try:
            rules = policy.rules_of(spec["spec"], f"{where}.spec")
        except policy.PolicyError as exc:
            raise fail(str(exc)) from None
        for i, rule in enumerate(rules):
            at = f"{where}.spec.policy.rules[{i}]"
            if rule.when is not None:
                try:
                    templates.check_condition(rule.when, f"{at}.when")
                except templates.TemplateError as exc:
                    raise fail(str(exc)) from None
            _templates(dict(rule.then.set), f"{at}.then.set")
    if kind in _ENGINE_KEYS:
        allowed = set(_ENGINE_KEYS[kind])
    else:
        model = KINDS[kind].Args
        allowed = {info.alias or name for name, info in model.model_fields.items()} | {
            "args",
            "input",
            "spec",
        }
    unknown = sorted(set(spec) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed - {"kind"}))
        raise fail(f"{where}.{unknown[0]}: unknown key for a {kind} tool; expected one of: {expected}")


def _jumps(spec: Mapping[str, Any]) -> str | None:
    """The task a task's policy jumps to (the first), or None."""
    try:
        rules = policy.rules_of(spec.get("spec"), "spec")
    except policy.PolicyError:
        return None  # refused with its own line by _keys
    return next((rule.then.to for rule in rules if rule.then.do == "jump"), None)


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
