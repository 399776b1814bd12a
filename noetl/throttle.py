"""A warning that repeats while a problem lasts, without flooding the log.

A part that keeps retrying (database down, NATS away, server not answering) would otherwise write
the same line several times a second. ``Throttle`` writes a new problem at once and the same
problem again at most every ``every`` seconds, so the log shows both what changed and that the
retrying goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOG_EVERY = 5.0  # seconds between two lines about the same problem


class Throttle:
    """``throttle(text)`` logs ``text`` as a warning unless the same text was logged recently."""

    def __init__(
        self,
        log: logging.Logger,
        prefix: str = "",
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.prefix = prefix
        self.every = every
        self.clock = clock
        self.last: str | None = None
        self.at = 0.0

    def __call__(self, text: str) -> bool:
        """Log ``text`` if it is new or ``every`` seconds have passed; True when it was logged."""
        now = self.clock()
        if text == self.last and now - self.at < self.every:
            return False
        self.log.warning("%s%s", self.prefix, text)
        self.last, self.at = text, now
        return True

    def clear(self) -> None:
        """The problem is over: the next one is logged at once, even if it is the same again."""
        self.last = None
