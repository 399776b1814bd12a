"""A fake clock for code that takes ``clock`` and ``sleep`` parameters: sleeping moves it at once."""

from __future__ import annotations


class FakeClock:
    """``clock()`` is ``now``; ``await clock.sleep(s)`` records ``s`` and adds it to ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
