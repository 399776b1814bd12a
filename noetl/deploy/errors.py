"""Errors of the build and cluster helpers, in noetl's hierarchy (one line, an exit code)."""

from __future__ import annotations

from noetl.errors import EXIT_CONFIG, NoetlError


class MissingToolError(NoetlError):
    """A program or Python package the command needs is not installed: nothing was started."""

    exit_code = EXIT_CONFIG


class DeployError(NoetlError):
    """A step (docker build, kind load, kubectl apply, a rollout) failed."""
