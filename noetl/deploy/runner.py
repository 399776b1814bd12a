"""The one place the build and cluster helpers start other programs.

Functions take a ``Runner``; the CLI passes ``SubprocessRunner``, tests may pass a recorder.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from noetl.deploy.errors import DeployError


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        capture: bool = False,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run ``argv``; with ``check``, a non-zero exit raises ``DeployError``.

        ``capture`` returns stdout instead of letting it through; ``env`` holds variables to set
        on top of the inherited environment.
        """
        ...


def describe(argv: Sequence[str]) -> str:
    """A command as a person would type it, shortened to its first words."""
    words = [shlex.quote(arg) for arg in argv]
    return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")


class SubprocessRunner:
    """Runs programs for real, echoing each command line to ``echo`` first."""

    def __init__(self, echo: TextIO | None = sys.stderr) -> None:
        self.echo = echo

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        capture: bool = False,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        if self.echo is not None and not capture:
            print("+ " + " ".join(shlex.quote(arg) for arg in argv), file=self.echo, flush=True)
        # The child gets this process's environment with ``env`` on top (a child's environment,
        # not a noetl setting).
        child_env = {**os.environ, **env} if env else None
        try:
            done = subprocess.run(
                list(argv),
                input=input,
                text=True,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.DEVNULL if capture and not check else None,
                env=child_env,
                check=False,
            )
        except FileNotFoundError:
            raise DeployError(f"{argv[0]} not found: is it installed and on PATH?") from None
        if check and done.returncode != 0:
            raise DeployError(
                f"`{describe(argv)}` failed with exit code {done.returncode}; see its output above"
            )
        return Result(done.returncode, done.stdout or "")
