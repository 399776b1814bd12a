"""Jinja2 templates of playbooks, rendered in a sandbox with NoETL's context rules.

A template sees every workload key at the top level and as ``workload.key``, ``ctx.key``, each
finished step's result under the step's name (also as ``<step>.data``), ``execution_id`` and, in a
loop, the iterator's name, ``iter.<name>`` and ``loop_index``. A step that did not run is undefined
and falsy; any other undefined name fails the template. A string that is exactly one
``{{ expression }}`` renders to the native value; any other string renders to text that is then read
back as JSON, a number or a boolean where it parses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TemplateError(ValueError):
    """A template that cannot be parsed or evaluated; ``str(e)`` is one line starting with ``where``."""


def check(value: Any, where: str) -> None:
    """Parse every template in ``value`` (recursively) without rendering; TemplateError if one
    does not parse. Registration uses it."""
    raise NotImplementedError


def render(value: Any, scope: Mapping[str, Any], where: str) -> Any:
    """Render ``value``: strings are templates, dicts and lists are rendered item by item, anything
    else is returned as it is. Raises TemplateError naming ``where`` (and the key inside it)."""
    raise NotImplementedError


def is_true(expression: str, scope: Mapping[str, Any], where: str) -> bool:
    """Evaluate a ``when``: ``"{{ x > 1 }}"`` or a bare ``"x > 1"``. Never silently false: an
    expression that cannot be evaluated raises TemplateError naming ``where``."""
    raise NotImplementedError
