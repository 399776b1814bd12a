"""``run_tool`` as the worker imports it: the tool kinds load at the first command, not at start.

The registry imports every kind's module with its pydantic model (pydantic itself, and httpx for
the http kind): ~100-120 ms of CPU and ~10 MiB; a worker needs none of it to start, register and
wait for work, and the server is still importing on the same cores then. The first command a
worker runs pays for it once.
"""

from __future__ import annotations

from typing import Any

from noetl.tools.base import Outcome, ToolContext


async def run_tool(tool: Any, ctx: ToolContext) -> Outcome:
    """``noetl.tools.registry.run_tool``, imported at the first call."""
    from noetl.tools.registry import run_tool as run

    return await run(tool, ctx)
