"""``run_tool`` as the worker imports it: the tool kinds load once the worker is ready, not at start.

The registry imports every kind's module with its pydantic model (pydantic itself, and httpx for
the http kind): ~100-120 ms of CPU and ~10 MiB. A worker needs none of it to start and register,
and the server is still importing on the same cores then; the worker loads it (``load_kinds``)
once it is registered and connected, before it takes its first command, so that no command pays
for it (a worker's first commands would otherwise be claimed and started that much apart).
"""

from __future__ import annotations

from typing import Any

from noetl.tools.base import Outcome, ToolContext


async def run_tool(tool: Any, ctx: ToolContext) -> Outcome:
    """``noetl.tools.registry.run_tool``, imported at the first call."""
    from noetl.tools.registry import run_tool as run

    return await run(tool, ctx)


def load_kinds() -> None:
    """Import the registry now (``run_tool`` would at its first call)."""
    import noetl.tools.registry  # noqa: F401
