"""Stop requests: SIGTERM/SIGINT handlers only record what happened; the loop acts on it.

The first signal asks for a drain (finish what runs, until the drain deadline); a second one asks
to release everything and leave at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("noetl.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class StopRequest:
    """Set by signals (or by tests and the loop itself): ``drain`` first, then ``now``."""

    clock: Callable[[], float] = time.monotonic
    drain: asyncio.Event = field(default_factory=asyncio.Event)
    now: asyncio.Event = field(default_factory=asyncio.Event)
    received_at: float | None = None

    def request(self, name: str = "stop") -> None:
        """Record one stop request; the second one escalates."""
        if not self.drain.is_set():
            self.received_at = self.clock()
            self.drain.set()
            log.info("%s: draining (no new commands; running ones may finish)", name)
        elif not self.now.is_set():
            self.now.set()
            log.info("%s again: releasing everything and leaving now", name)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request, sig.name)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
