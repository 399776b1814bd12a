"""Follow a playbook execution's events until it ends (for `noetl exec --wait`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from noetl.client.api import WAIT_OUTAGE_TOLERANCE, ApiClient
from noetl.errors import ServerUnavailableError
from noetl.protocol.words import EXECUTION_FINISHED


def follow(
    client: ApiClient,
    execution_id: str,
    on_event: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Call ``on_event`` with each event in order until the execution ended; return the execution.

    A server or database that blinks is tolerated for ``WAIT_OUTAGE_TOLERANCE`` seconds.
    """
    after = 0
    interval = 0.1
    outage_since: float | None = None
    while True:
        events: list[dict[str, Any]] = []
        try:
            events = client.events(execution_id, after=after)
            for event in events:
                after = max(after, int(event["event_id"]))
                on_event(event)
            if not events:
                execution = client.execution(execution_id)
                if execution["status"] in EXECUTION_FINISHED:
                    # Events recorded between the two calls are shown before the end.
                    for event in client.events(execution_id, after=after):
                        after = max(after, int(event["event_id"]))
                        on_event(event)
                    return execution
            outage_since = None
        except ServerUnavailableError:
            now = clock()
            outage_since = outage_since if outage_since is not None else now
            if now - outage_since > WAIT_OUTAGE_TOLERANCE:
                raise
        if events:
            interval = 0.1
            continue
        sleep(interval)
        interval = min(interval * 1.5, 1.0)
