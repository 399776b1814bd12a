"""Failed logins counted per client address, so a token cannot be guessed at the login form.

A generated token (32 random bytes) cannot be guessed anyway, but ``NOETL_API_TOKEN`` may be set
to something weaker. After ``MAX_FAILURES`` wrong tokens from one address within ``WINDOW``
seconds, the form answers 429 to that address (with ``Retry-After``) until the oldest of them
leaves the window; a right token clears the address's count. Memory stays bounded: at most
``MAX_CLIENTS`` addresses are remembered, the least recently failed forgotten first. Behind a
proxy every browser may share its address (uvicorn takes ``X-Forwarded-For`` only from
``FORWARDED_ALLOW_IPS``): one of them guessing then locks out the others for a minute.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_FAILURES = 10
WINDOW = 60.0
MAX_CLIENTS = 10_000


class LoginAttempts:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds ``client`` must wait before trying again; ``None`` when it may try now."""
        failures = self._recent(client)
        if failures is None or len(failures) < MAX_FAILURES:
            return None
        return max(0.0, failures[0] + WINDOW - self._clock())

    def failed(self, client: str) -> None:
        failures = self._recent(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=MAX_FAILURES)
        failures.append(self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        """The client's failures within the window (older ones dropped), or None."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self._clock() - WINDOW
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures
