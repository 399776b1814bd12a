"""The python tool's template: which runner it loads and how the worker starts it at its start.

Apart from ``python`` (the kind, with its pydantic model) so that a worker starts its template
before, and without, importing the tool kinds: they load at its first command (``deferred``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from noetl.tools import warm
from noetl.tools.base import ToolError

log = logging.getLogger("noetl.worker")

# The template loads the runner from its file: it needs nothing importable but the standard library.
RUNNER = Path(__file__).with_name("python_runner.py")
# Where the modules imported in the template come from (named when one cannot be imported).
PRELOAD_SETTING = "NOETL_PYTHON_PRELOAD"


def warm_up(env: Mapping[str, str], preload: str) -> None:
    """Start the python template for the tool environment ``env`` now, with the comma-separated
    modules of ``preload`` (``NOETL_PYTHON_PRELOAD``) imported in it; the worker calls this once
    it has registered, so that its first python command finds the template ready."""
    try:
        warm.start(RUNNER, env, [name for name in preload.split(",") if name], PRELOAD_SETTING)
    except ToolError as exc:  # the first command tries again and fails saying why
        log.warning("%s", exc)
