"""One error hierarchy for everything a user can get wrong or meet at run time.

Each error carries the process exit code the CLI ends with, so the mapping lives in one place.
The message is one line meant for people: what is wrong and how to fix it.
"""

from __future__ import annotations

# Exit codes (also listed in the README).
EXIT_OK = 0
EXIT_FAILURE = 1  # a command or a supervised program failed
EXIT_CONFIG = 2  # bad settings or usage: nothing was started
EXIT_NOT_RUNNING = 3  # LSB "program is not running": some programs are not RUNNING
EXIT_UNREACHABLE = 4  # LSB "unknown": nothing reachable (no control socket, no server)
EXIT_ALREADY_RUNNING = 5  # a second launcher on the same run dir, or a port already taken


class NoetlError(Exception):
    """Base class: a failure with a one-line message for people and an exit code."""

    exit_code = EXIT_FAILURE


class ConfigError(NoetlError):
    """A setting, flag or file the user gave is wrong."""

    exit_code = EXIT_CONFIG


class NotRunningError(NoetlError):
    """Nothing answers where noetl should be running."""

    exit_code = EXIT_UNREACHABLE


class AlreadyRunningError(NoetlError):
    """Another instance holds the run directory or the port."""

    exit_code = EXIT_ALREADY_RUNNING


class ControlError(NoetlError):
    """supervisord refused or failed a control request."""

    exit_code = EXIT_FAILURE
    fault_code: int | None = None  # supervisord's XML-RPC faultCode, when it sent one
    http_status: int | None = None  # the HTTP status of its answer, when that was not 200


class ProgramFailedError(NoetlError):
    """A supervised program could not stay up."""

    exit_code = EXIT_FAILURE


class ServerUnavailableError(NoetlError):
    """The NoETL API server cannot be reached or answered with an error."""

    exit_code = EXIT_UNREACHABLE
