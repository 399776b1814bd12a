"""The programs `noetl run` supervises, as its event listener last wrote them (for the UI).

The server runs as the unprivileged NOETL_USER and never reaches the control socket: it reads the
snapshot the listener keeps in ``$NOETL_HOME/programs.json`` (see ``noetl.protocol.programs``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from noetl.protocol.programs import decode, snapshot_path
from noetl.settings import Settings


async def read_programs(settings: Settings) -> list[dict[str, Any]] | None:
    """Each supervised program: name, group, state, pid, uptime_s, rss_bytes, description, in
    start order; None when the server does not run under `noetl run` (no snapshot, a stale one,
    or one this user may not read)."""
    return await asyncio.to_thread(_read, settings)


def _read(settings: Settings) -> list[dict[str, Any]] | None:
    try:
        text = snapshot_path(settings.home).read_text(encoding="utf-8")
    except OSError:
        return None
    return decode(text)
