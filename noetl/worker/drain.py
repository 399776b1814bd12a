"""The drain budget: how long running commands may go on after SIGTERM, and when to be gone.

supervisord (``stopwaitsecs``) and Kubernetes (``terminationGracePeriodSeconds``) send SIGKILL
``worker_stop_timeout`` seconds after SIGTERM. The worker lets commands finish until the drain
deadline, a margin before that; in the margin it releases what is still running and exits.
"""

from __future__ import annotations

from dataclasses import dataclass

# The margin: 20% of the stop timeout, at most 3 s.
_MARGIN_SHARE = 0.2
_MARGIN_MAX = 3.0


@dataclass(frozen=True)
class DrainBudget:
    """Seconds after the stop signal: ``drain`` for commands to finish, ``leave`` to be gone by."""

    drain: float
    leave: float


def drain_budget(stop_timeout: float) -> DrainBudget:
    """Split ``stop_timeout`` into the time commands may finish in and the time to release and exit.

    >>> drain_budget(20)
    DrainBudget(drain=17.0, leave=19.0)
    >>> drain_budget(2)
    DrainBudget(drain=1.6, leave=1.867)
    """
    margin = min(_MARGIN_MAX, stop_timeout * _MARGIN_SHARE)
    drain = stop_timeout - margin
    # Releasing and deregistering use two thirds of the margin; the last third is slack before SIGKILL.
    leave = drain + margin * 2 / 3
    return DrainBudget(drain=round(drain, 3), leave=round(leave, 3))
