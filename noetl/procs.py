"""Linux process controls shared by the launcher and the tools: prctl(2), looked up once.

Where prctl does not exist (not Linux) every function here is a no-op: the launcher's reaping and
the tools' process-group kills still cover the common cases.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def _load_prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up at import, in the parent: a lookup in every child before exec would cost ms per spawn.
_PRCTL = _load_prctl()


def prctl(option: int, value: int) -> None:
    """prctl(option, value); a no-op where it does not exist or refuses."""
    if _PRCTL is not None:
        with contextlib.suppress(OSError):
            _PRCTL(option, value, 0, 0, 0)


def killed_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGKILL when its parent dies (a tool when its worker dies)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def terminated_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGTERM when its parent dies (supervisord when the launcher does)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (as to PID 1) instead of to init."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def not_dumpable() -> None:
    """Close this process to its own user: no core dump, no ptrace, no /proc/<pid>/environ or mem.

    The server, the workers and the launcher call it first: they hold tokens and passwords in their
    environment, and a tool runs as the same user. A tool's exec resets it for the tool itself.
    """
    prctl(PR_SET_DUMPABLE, 0)
