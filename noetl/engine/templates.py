"""Jinja2 templates of playbooks, rendered in a sandbox with NoETL's context rules.

A template sees every workload key at the top level and as ``workload.key``, ``ctx.key`` (the
workload with the context's writes over it, as in NoETL), each finished step's result under the
step's name (also as ``<step>.data`` and ``<step>.result``), ``execution_id`` (and ``job.uuid``)
and, in a loop, the iterator's name, ``iter.<name>`` and ``loop_index``. A step that did not run is
undefined and falsy; any other undefined name fails the template. A string that is exactly one
``{{ expression }}`` renders to the native value; any other string with template markup renders to
text that is then read back as JSON, a number or a boolean where it parses. Strings without markup
stay as they are.

The environment is Jinja2's immutable sandbox: no attribute that starts with ``_``, no method that
mutates a list or dict, no unsafe callables; products and powers are bounded so that one template
cannot eat the server's memory.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import operator
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2 import TemplateError as JinjaError
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The longest string or list a `*` may build, and the largest power `**` may compute.
MAX_PRODUCT = 1_000_000
MAX_POWER_BITS = 4096
# Text longer than this is not read back as a Python literal (ast.literal_eval is recursive).
_LITERAL_LIMIT = 100_000

_ONE_EXPRESSION = re.compile(r"\A\s*\{\{(?P<expr>.*?)\}\}\s*\Z", re.DOTALL)
_MARKUP = ("{{", "{%", "{#")


class TemplateError(ValueError):
    """A template that cannot be parsed or evaluated; ``str(e)`` is one line starting with ``where``."""


class _Undefined(StrictUndefined):
    """A name nobody defined: any use but ``is defined`` and ``default`` fails (a typo in a
    ``when`` must not read as false)."""


class NotRun(Undefined):
    """A step of the playbook that did not run (or did not finish): undefined and falsy, so
    ``{{ a.x if a else b.x }}`` works; any other use fails naming the step."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    __str__ = __iter__ = __len__ = Undefined._fail_with_undefined_error


def _not_run(name: str) -> NotRun:
    return NotRun(hint=f"step '{name}' did not run", name=name)


# NoETL's names for a step's whole result: `<step>.data` and, in older playbooks, `<step>.result`.
_WHOLE = ("data", "result")


class _Result(dict[str, Any]):
    """A step's dict result, also reachable as ``<step>.data`` and ``<step>.result`` (unless it has
    keys of those names)."""

    def __missing__(self, key: str) -> Any:
        if key in _WHOLE:
            return dict(self)
        raise KeyError(key)


class _ListResult(list[Any]):
    """A step's list result, also reachable as ``<step>.data`` and ``<step>.result``."""

    @property
    def data(self) -> list[Any]:
        return list(self)

    @property
    def result(self) -> list[Any]:
        return list(self)


# Jinja's messages name an object's type by module and class: say "dict object", as for any dict.
for _cls, _name in ((_Result, "dict"), (_ListResult, "list")):
    _cls.__module__, _cls.__name__ = "builtins", _name


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # A key wins over a dict's method: `{{ fetch.data.items }}` is the answer's `items`,
        # not dict.items (plain Jinja gives the method).
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_PRODUCT
                ):
                    raise OverflowError(f"a product longer than {MAX_PRODUCT} items")
            return operator.mul(left, right)
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and abs(left).bit_length() * right > MAX_POWER_BITS
        ):
            raise OverflowError(f"a power larger than {MAX_POWER_BITS} bits")
        return operator.pow(left, right)


def _b64encode(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(text.encode()).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value.encode()).decode()


_env = _Sandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
_env.filters["b64encode"] = _b64encode
_env.filters["b64decode"] = _b64decode
_env.filters["from_json"] = json.loads


# Compiling is most of a render's cost (a loop renders the same templates for every item):
# compiled templates are kept, a playbook's few hundred at most.
@functools.lru_cache(maxsize=4096)
def _expression_of(expr: str) -> Any:
    return _env.compile_expression(expr, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _template_of(text: str) -> Any:
    return _env.from_string(text)


def make_scope(
    *,
    execution_id: str,
    workload: Mapping[str, Any],
    ctx: Mapping[str, Any],
    results: Mapping[str, Any],
    not_run: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates see (see the module's docstring). ``results`` are the finished steps'
    results; ``not_run`` the other step names of the playbook; ``extra`` names (``event``,
    ``output``, ``input``, loop variables) come last and win."""
    variables = {**workload, **ctx}
    scope: dict[str, Any] = dict(variables)
    for name in not_run:
        if name not in scope:
            scope[name] = _not_run(name)
    for name, result in results.items():
        scope[name] = _wrap(result)
    scope["workload"] = variables
    scope["ctx"] = variables
    scope["execution_id"] = execution_id
    scope["job"] = {"uuid": execution_id, "execution_id": execution_id, "id": execution_id}
    scope.setdefault("iter", {})
    if extra:
        scope.update(extra)
    return scope


def plain_scope(
    *,
    execution_id: str,
    workload: Mapping[str, Any],
    ctx: Mapping[str, Any],
    results: Mapping[str, Any],
    not_run: Iterable[str] = (),
    loop: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates see, as plain JSON (the python tool's read-only ``context``): the steps
    that did not run are simply absent; ``loop`` holds an iteration's names."""
    del not_run
    variables = {**workload, **ctx}
    return {
        **variables,
        **results,
        "workload": variables,
        "ctx": variables,
        "execution_id": execution_id,
        "job": {"uuid": execution_id, "execution_id": execution_id, "id": execution_id},
        **(loop or {}),
    }


def _wrap(result: Any) -> Any:
    if isinstance(result, dict):
        return _Result(result)
    if isinstance(result, list):
        return _ListResult(result)
    return result


def has_markup(text: str) -> bool:
    return any(mark in text for mark in _MARKUP)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(where: str, exc: Exception) -> TemplateError:
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(_one_line(f"{where}: template syntax error (line {exc.lineno}): {exc.message}"))
    if isinstance(exc, UndefinedError):
        return TemplateError(_one_line(f"{where}: {exc.message}"))
    if isinstance(exc, JinjaError):  # SecurityError among them
        return TemplateError(_one_line(f"{where}: {exc.message or type(exc).__name__}"))
    return TemplateError(_one_line(f"{where}: {type(exc).__name__}: {exc}"))


def _expression(text: str) -> str | None:
    """The expression of a string that is exactly one ``{{ expression }}``, else None."""
    match = _ONE_EXPRESSION.match(text)
    if match is None:
        return None
    expr = match.group("expr")
    return None if any(mark in expr for mark in (*_MARKUP, "}}")) else expr


def check(value: Any, where: str) -> None:
    """Parse every template in ``value`` (recursively) without rendering; TemplateError naming
    ``where`` and the key if one does not parse. Registration uses it."""
    for path, text in _strings(value, where):
        if not has_markup(text):
            continue
        try:
            expr = _expression(text)
            if expr is not None:
                _env.compile_expression(expr)
            else:
                _env.parse(text)
        except Exception as exc:
            raise _fail(path, exc) from None


def check_condition(expression: Any, where: str) -> None:
    """Parse a ``when`` (``"{{ x > 1 }}"``, a bare ``"x > 1"`` or a boolean)."""
    if isinstance(expression, bool):
        return
    if not isinstance(expression, str) or not expression.strip():
        raise TemplateError(f"{where}: expected an expression or true/false")
    try:
        _env.compile_expression(_condition_source(expression))
    except Exception as exc:
        raise _fail(where, exc) from None


def _strings(value: Any, where: str) -> Iterable[tuple[str, str]]:
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, Mapping):
            stack.extend((f"{path}.{key}", sub) for key, sub in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))


def render(value: Any, scope: Mapping[str, Any], where: str) -> Any:
    """Render ``value``: strings are templates, dicts and lists are rendered item by item, anything
    else is returned as it is. Raises TemplateError naming ``where`` (and the key inside it)."""
    if isinstance(value, str):
        return _render_text(value, scope, where)
    if isinstance(value, Mapping):
        return {key: render(sub, scope, f"{where}.{key}") for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [render(sub, scope, f"{where}[{i}]") for i, sub in enumerate(value)]
    return value


def _render_text(text: str, scope: Mapping[str, Any], where: str) -> Any:
    if not has_markup(text):
        return text
    expr = _expression(text)
    try:
        if expr is not None:
            return _plain(_expression_of(expr)(**scope), where)
        rendered = _template_of(text).render(scope)
    except TemplateError:
        raise
    except Exception as exc:
        raise _fail(where, exc) from None
    return read_back(rendered)


def _plain(value: Any, where: str) -> Any:
    """A native value as plain JSON-like data (dicts, lists, str, numbers, bools, None)."""
    if isinstance(value, Undefined):
        try:
            value._fail_with_undefined_error()
        except Exception as exc:  # UndefinedError, or SecurityError for an unsafe attribute
            raise _fail(where, exc) from None
    if value is None or isinstance(value, bool | int | float | str):
        return str(value) if isinstance(value, str) and type(value) is not str else value
    if isinstance(value, Mapping):
        return {str(key): _plain(sub, where) for key, sub in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(sub, where) for sub in value]
    raise TemplateError(
        f"{where}: the value is a {type(value).__name__}, not data (a method called without ()?)"
    )


def read_back(text: str) -> Any:
    """Rendered text as the value it spells: JSON, a Python literal Jinja printed (``True``,
    ``{'a': 1}``), else the text itself. A quoted string stays the text it was."""
    stripped = text.strip()
    if not stripped:
        return text
    try:
        value = json.loads(stripped)
    except ValueError:
        pass
    else:
        return text if isinstance(value, str) else value
    if len(stripped) <= _LITERAL_LIMIT and (stripped[0] in "[{(" or stripped in ("True", "False", "None")):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return text
        if isinstance(value, dict | list | bool) or value is None:
            return value
    return text


def _condition_source(expression: str) -> str:
    expr = _expression(expression)
    return expr if expr is not None else expression


def is_true(expression: str | bool, scope: Mapping[str, Any], where: str) -> bool:
    """Evaluate a ``when``: ``"{{ x > 1 }}"``, a bare ``"x > 1"`` or a boolean. Never silently
    false: an expression that cannot be evaluated raises TemplateError naming ``where``. A step
    that did not run is false; a text result reads ``"false"``, ``"no"``, ``"0"``, ``""`` as false."""
    if isinstance(expression, bool):
        return expression
    if isinstance(expression, str) and has_markup(expression) and _expression(expression) is None:
        value = render(expression, scope, where)
    else:
        try:
            value = _expression_of(_condition_source(expression))(**scope)
        except Exception as exc:
            raise _fail(where, exc) from None
        if isinstance(value, NotRun):
            return False
        value = _plain(value, where)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)
