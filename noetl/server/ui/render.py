"""The UI's Jinja2 environment: templates shipped in the package, autoescape on for every one.

Nothing a template prints can inject markup: every value is escaped unless it is ``Markup`` built
by ``highlight`` from escaped pieces. Filters format times, durations and JSON for people.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from noetl.server.ui.session import Keys

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("noetl.server.ui", "templates"),
    # Every template, whatever its name (the SVG ones too).
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``3s ago``, ``5m ago``, ``2h ago``, ``4d ago``."""
    if moment is None:
        return "-"
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    return f"{seconds_text(seconds)} ago"


def seconds_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long from ``start`` to ``end`` (to now while it runs)."""
    if start is None:
        return "-"
    return seconds_text(max(0.0, ((end or datetime.now(UTC)) - start).total_seconds()))


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    """JSON for a ``<pre>``: indented, keys in their order (escaped by the template, like all text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


PREVIEW = 200  # characters of an event's result in the events table


def preview(value: Any) -> str:
    """A result on one line, cut at ``PREVIEW`` characters (the table's cell; the step panel has it all)."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def seconds(value: float | None) -> str:
    return "-" if value is None else seconds_text(value)


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def short(value: Any) -> str:
    text = str(value)
    return text[:8]


_env.filters.update(
    ago=ago,
    duration=duration,
    when=when,
    pretty=pretty,
    short=short,
    preview=preview,
    seconds=seconds,
    mib=mib,
)


def render(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def page(request: Request, keys: Keys, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole page: the template with the navigation's needs (where we are, the CSRF token)."""
    nonce = request.scope.get("state", {}).get("nonce")
    body = render(
        template,
        here=request.url.path,
        csrf=keys.csrf(nonce) if nonce is not None else "",
        logged_in=keys.required and nonce is not None,
        **context,
    )
    headers = {
        # Only this server's own scripts and styles; no frame may embed the UI.
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(body, status_code=status_code, headers=headers)
