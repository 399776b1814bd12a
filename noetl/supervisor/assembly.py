"""What `noetl run` supervises, decided once: `noetl run` writes it, `noetl config render` prints it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from noetl.settings import Settings
from noetl.supervisor import embedded
from noetl.supervisor.embedded import Binaries, Plan
from noetl.supervisor.preflight import check_database
from noetl.supervisor.programs import Program, programs_for

FindBinaries = Callable[[Plan, Settings], Binaries]


@dataclass(frozen=True)
class Assembly:
    """The programs of one run and what they need; ``render`` turns it into the config text."""

    settings: Settings  # as the programs see them: pointed at the embedded services, if any
    embedded: Plan
    binaries: Binaries
    programs: tuple[Program, ...]  # in start order: embedded services, server, workers
    python: str  # the interpreter the noetl programs and the event listener run with
    run_as_root: bool


def assemble(
    settings: Settings,
    python: str,
    run_as_root: bool,
    find_binaries: FindBinaries = embedded.find_binaries,
) -> Assembly:
    """Decide what to embed and list every program; ConfigError when `noetl run` would refuse.

    ``find_binaries`` locates the embedded services' binaries (ConfigError naming what to install
    when they are missing); stop budgets pass one that returns placeholders.
    """
    what = embedded.plan(settings)
    effective = embedded.effective(settings, what)
    check_database(effective)
    bins = find_binaries(what, effective)
    programs = (
        *embedded.programs(effective, what, bins, run_as_root),
        *programs_for(effective, python, run_as_root),
    )
    return Assembly(effective, what, bins, programs, python, run_as_root)


def placeholder_binaries(what: Plan, settings: Settings) -> Binaries:
    """Bare binary names, for what does not exec them (stop budgets)."""
    return Binaries()
