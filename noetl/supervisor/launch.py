"""`noetl run`: the only place that spawns supervisord, and its parent for as long as it runs.

``run`` starts supervisord's process first (``parent.Supervisord``: it imports meanwhile), checks
before it starts any program (``preflight``), holds the run directory (``rundir``), writes the
config of ``assembly.assemble`` and hands it over to supervisord, staying its parent until it exits.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Protocol, TextIO

from noetl.logs import json_line
from noetl.procs import not_dumpable
from noetl.settings import Settings
from noetl.supervisor import embedded, files, parent, users
from noetl.supervisor.assembly import assemble
from noetl.supervisor.paths import RunPaths
from noetl.supervisor.preflight import check_embedded_ports, check_port
from noetl.supervisor.render import ControlAuth, render
from noetl.supervisor.rundir import clear_stale, prepare_run_dir, run_lock, write_private
from noetl.tokens import API_TOKEN_FILE, ensure_tokens, read_token, token_path


class Supervisor(Protocol):
    """What ``run`` starts first and hands the config to (``parent.Supervisord``)."""

    def supervise(self, paths: RunPaths, env: Mapping[str, str]) -> int: ...
    def cancel(self) -> None: ...


StartSupervisor = Callable[[str, Mapping[str, str], RunPaths], Supervisor]
PrepareServices = Callable[[Settings, embedded.Plan, embedded.Binaries, bool], embedded.Secrets]


def announce(settings: Settings, out: TextIO, what: embedded.Plan) -> None:
    """The launcher's one line at start: what runs where, and how to look at it."""
    parts = []
    if settings.role in ("all", "server"):
        if settings.host in ("0.0.0.0", "::"):
            parts.append(f"API on {settings.host} port {settings.port} (every interface)")
        else:
            parts.append(f"API on http://{settings.host}:{settings.port}")
        if settings.enable_ui:
            parts.append(f"web UI at {settings.server_url}/")
    if settings.role in ("all", "worker"):
        parts.append(f"{settings.workers} worker(s) x {settings.worker_concurrency}")
    if what.postgres:
        where = settings.postgres_host
        if where == "127.0.0.1":
            where = f"127.0.0.1:{settings.postgres_port}"
        parts.append(f"embedded PostgreSQL on {where}")
    if what.nats:
        parts.append(f"embedded NATS on {settings.shown('nats_url')}")
    messages = [
        f"starting role={settings.role}: {', '.join(parts)}; `noetl ctl status` (run dir {settings.run_dir})"
    ]
    if settings.role in ("all", "server"):
        messages.append(_how_to_authenticate(settings))
    for message in messages:
        if settings.log_format == "json":
            line = json_line({"level": "info", "process": "noetl", "message": message})
        else:
            line = f"noetl | {message}"
        print(line, file=out, flush=True)


def _how_to_authenticate(settings: Settings) -> str:
    """Where the API answers and what to send it, the way Jupyter prints its URL with a token.

    The token itself is printed only when it was generated here (it is in a 0600 file anyway);
    one given in NOETL_API_TOKEN is the operator's secret and stays out of logs.
    """
    if settings.auth == "none":
        return f"auth: none (NOETL_AUTH=none, loopback only): http://{settings.host}:{settings.port}/"
    path = token_path(settings.home, API_TOKEN_FILE)
    if settings.api_token is not None and read_token(path) == settings.api_token:
        return (
            f"API token in {path} (the CLI reads it there): "
            f"curl -H 'Authorization: Bearer {settings.api_token}' {settings.server_url}/api/executions"
        )
    return "API token from NOETL_API_TOKEN: send `Authorization: Bearer $NOETL_API_TOKEN`"


def run(
    settings: Settings,
    environ: Mapping[str, str],
    python: str = sys.executable,
    out: TextIO = sys.stdout,
    start_supervisor: StartSupervisor = parent.Supervisord.start,
    prepare_services: PrepareServices = embedded.prepare,
    check_python: Callable[[str, str], None] = users.check_can_run,
) -> int:
    """Validate, write the config, start supervisord and stay its parent until it exits; 0 or raises.

    ``start_supervisor`` starts supervisord's process, which gets the written config once it is
    written (or is cancelled), ``prepare_services`` creates the embedded services' data (initdb):
    both spawn processes, so tests of the config pass their own.
    As root, ``check_python`` refuses an interpreter NOETL_USER (its second argument) cannot run.
    """
    not_dumpable()  # it holds every secret of the run in its environment
    paths = RunPaths(settings.run_dir)
    # First: its imports take as long as everything below, on the other core.
    supervisor = start_supervisor(python, environ, paths)
    try:
        return _run(settings, paths, environ, python, out, supervisor, prepare_services, check_python)
    finally:
        supervisor.cancel()  # nothing to do once it has its config


def _run(
    settings: Settings,
    paths: RunPaths,
    environ: Mapping[str, str],
    python: str,
    out: TextIO,
    supervisor: Supervisor,
    prepare_services: PrepareServices,
    check_python: Callable[[str, str], None],
) -> int:
    files.check_private_dir(settings.home, "NOETL_HOME")
    what = assemble(settings, python, run_as_root=os.geteuid() == 0)
    prepare_run_dir(paths)
    # Into the programs' environment only: the rendered config never holds a token.
    what = dataclasses.replace(what, settings=ensure_tokens(what.settings))
    with run_lock(paths):
        clear_stale(paths)
        check_port(what.settings)
        check_embedded_ports(what.settings, what.embedded)
        generated = prepare_services(what.settings, what.embedded, what.binaries, what.run_as_root)
        if what.run_as_root and any(p.user == settings.user for p in what.programs):
            check_python(python, settings.user)
        write_private(paths.config, render(what, ControlAuth.new()))
        # The generated password and token reach the programs through the environment only.
        programs_settings = embedded.with_secrets(what.settings, what.embedded, generated)
        env = {**environ, **programs_settings.to_env(), "PYTHONUNBUFFERED": "1"}
        announce(what.settings, out, what.embedded)
        return supervisor.supervise(paths, env)
