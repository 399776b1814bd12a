"""A tiny YAML highlighter for the catalog page: each line split into spans, every piece escaped.

Line-based on purpose (keys, comments, strings, numbers, booleans, ``{{ templates }}``): playbooks
are plain block YAML, and a highlighter that only wraps escaped text in spans cannot break the
page whatever the playbook holds.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z0-9_.\-]+|\"[^\"]*\"|'[^']*')(\s*:)(?=\s|$)")
_COMMENT = re.compile(r"(^|\s)(#.*)$")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_TOKEN = re.compile(
    r"(?P<tpl>\{\{.*?\}\}|\{%.*?%\})"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'[^']*')"
    r"|(?P<lit>(?<![\w.])(?:true|false|null|~|-?\d+(?:\.\d+)?)(?![\w.]))"
)


def _span(kind: str, text: str) -> Markup:
    return Markup('<span class="y-{}">{}</span>').format(kind, text)


def _templates(text: str) -> Markup:
    """``text`` escaped, its ``{{ ... }}`` and ``{% ... %}`` in spans (inside a string too)."""
    out = Markup()
    pos = 0
    for match in _TEMPLATE.finditer(text):
        out += escape(text[pos : match.start()]) + _span("tpl", match.group())
        pos = match.end()
    return out + escape(text[pos:])


def _value(text: str) -> Markup:
    out = Markup()
    pos = 0
    for match in _TOKEN.finditer(text):
        out += escape(text[pos : match.start()])
        kind = match.lastgroup or "lit"
        inner = _templates(match.group()) if kind == "str" else escape(match.group())
        out += _span(kind, inner)
        pos = match.end()
    return out + escape(text[pos:])


def highlight_line(line: str) -> Markup:
    """One line of YAML as escaped HTML with spans (``y-key``, ``y-str``, ``y-tpl``, ...)."""
    comment = ""
    found = _COMMENT.search(line)
    # A '#' inside quotes or a template is not a comment; only split where none is open.
    if found and line[: found.start(2)].count('"') % 2 == 0 and "{{" not in line[found.start(2) :]:
        line, comment = line[: found.start(2)], found.group(2)
    out = Markup()
    key = _KEY.match(line)
    if key:
        out += escape(key.group(1)) + _span("key", key.group(2)) + escape(key.group(3))
        line = line[key.end() :]
    out += _value(line)
    if comment:
        out += _span("com", comment)
    return out


def highlight(text: str) -> Markup:
    """The whole document, line by line, newlines kept (for a ``<pre>``)."""
    return Markup("\n").join(highlight_line(line) for line in text.splitlines())
