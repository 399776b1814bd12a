"""The programs `noetl run` supervises, as data: what the template renders and stop budgets use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from noetl.settings import Settings

# supervisord groups, stopped one after another in reverse priority order (see GROUP_PRIORITY):
# first the workers (in parallel with each other), so that they can still report to the server while
# they drain; then the server; then the embedded services it uses. A program's priority is its
# group's: between groups only the group's counts, and inside a group supervisord starts the
# programs in the order they are listed and stops them together.
WORKERS_GROUP = "workers"
SERVER_GROUP = "server"
SERVICES_GROUP = "services"
GROUP_PRIORITY = {SERVICES_GROUP: 50, SERVER_GROUP: 100, WORKERS_GROUP: 200}
# Start-up rules (explained in the template): a program must stay up STARTSECS to count as
# started, and becomes FATAL after STARTRETRIES quicker deaths in a row.
STARTSECS = 2
STARTRETRIES = 3
# HOME of the programs run as NOETL_USER: root's is closed to that user (asyncpg fails on a
# ~/.postgresql it may not read), and a system user has none; as for Debian's `nobody`. A tool that
# needs a HOME sets one in its own `env`.
NO_HOME = "/nonexistent"


@dataclass(frozen=True)
class Program:
    name: str
    command: Sequence[str]
    stopwaitsecs: int
    numprocs: int = 1
    process_name: str = ""
    startsecs: int = STARTSECS
    startretries: int = STARTRETRIES
    stopsignal: str = "TERM"
    # Send the stop signal to the whole process group (a tool's subprocesses too), or to the
    # program alone when it stops its own children (PostgreSQL's postmaster).
    stopasgroup: bool = True
    user: str | None = None
    # Variables set for this program on top of the inherited environment (no secrets: they are
    # written into the config file).
    environment: tuple[tuple[str, str], ...] = ()
    # supervisord stops the programs of one group in parallel, and the groups one after another.
    group: str = WORKERS_GROUP

    def __post_init__(self) -> None:
        if not self.process_name:
            object.__setattr__(self, "process_name", self.name)

    @property
    def priority(self) -> int:
        return GROUP_PRIORITY[self.group]


def programs_for(settings: Settings, python: str, run_as_root: bool = False) -> list[Program]:
    """The noetl programs a role runs, in start order; as root, as the unprivileged NOETL_USER."""
    user = settings.user if run_as_root else None
    environment = (("HOME", NO_HOME),) if run_as_root else ()
    programs: list[Program] = []
    if settings.role in ("all", "server"):
        programs.append(
            Program(
                name="server",
                command=[
                    *(python, "-m", "noetl.supervisor.entry", "noetl.server"),
                    *("--host", settings.host, "--port", str(settings.port)),
                ],
                stopwaitsecs=settings.stop_timeout,
                user=user,
                environment=environment,
                group=SERVER_GROUP,
            )
        )
    if settings.role in ("all", "worker"):
        programs.append(
            Program(
                name="worker",
                # entry.py: the program without the optional imports it never uses.
                command=[python, "-m", "noetl.supervisor.entry", "noetl.worker"],
                stopwaitsecs=settings.worker_stop_timeout,
                numprocs=settings.workers,
                # A literal supervisord expansion: worker_00, worker_01, ...
                process_name="worker_%(process_num)02d",
                user=user,
                environment=environment,
                group=WORKERS_GROUP,
            )
        )
    return programs


def group_names(programs: Sequence[Program]) -> list[str]:
    seen: list[str] = []
    for program in programs:
        if program.group not in seen:
            seen.append(program.group)
    return seen
