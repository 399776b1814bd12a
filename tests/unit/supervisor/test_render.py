"""Rendering: golden files per role, validity under supervisor's own parser, stop budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally

from noetl.settings import load_settings
from noetl.supervisor import embedded
from noetl.supervisor.render import ControlAuth, masked, max_stop_seconds
from tests.unit.supervisor.conftest import argv_of, parse_with_supervisor, render

GOLDEN = Path(__file__).parent / "golden"
PYTHON = "/opt/noetl/venv/bin/python"
AUTH = ControlAuth(username="noetl-test", password="not-a-real-password")
ENV = {
    "HOME": "/home/noetl",
    "NOETL_RUN_DIR": "/run/noetl",
    "POSTGRES_HOST": "db",
    "POSTGRES_PASSWORD": "pg-secret-value",
    "NOETL_API_TOKEN": "api-secret-value",
    "NATS_URL": "nats://user:nats-secret-value@nats:4222",
}


def assert_golden(golden: Path, text: str) -> None:
    """``text`` is the committed ``golden`` file. With UPDATE_GOLDEN set, a changed file is rewritten
    and the test still fails: an update is accepted by a second run that compares, never by the run
    that wrote it."""
    committed = golden.read_text() if golden.exists() else None
    if os.environ.get("UPDATE_GOLDEN") and text != committed:
        golden.write_text(text)
        pytest.fail(f"{golden.name} rewritten (UPDATE_GOLDEN): review the diff, then run again without it")
    assert text == committed, f"rendered config differs from {golden.name}; UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize(
    ("profile", "env"),
    [
        ("all", {"NOETL_ROLE": "all", "NOETL_WORKERS": "3"}),
        ("server", {"NOETL_ROLE": "server", "NOETL_STOP_TIMEOUT": "15"}),
        ("worker", {"NOETL_ROLE": "worker", "NOETL_WORKERS": "2", "NOETL_LOG_FORMAT": "json"}),
    ],
)
def test_golden(profile: str, env: dict[str, str]) -> None:
    text = render(load_settings({**ENV, **env}), AUTH, PYTHON, run_as_root=False)
    assert_golden(GOLDEN / f"{profile}.conf", text)


@pytest.mark.parametrize("role", ["all", "server", "worker"])
def test_supervisor_parses_it_as_intended(role: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run dir"
    (run_dir / "logs").mkdir(parents=True)
    settings = load_settings({**ENV, "NOETL_RUN_DIR": str(run_dir), "NOETL_ROLE": role, "NOETL_WORKERS": "3"})
    options = parse_with_supervisor(render(settings, AUTH, PYTHON), tmp_path)
    groups = {g.name: g for g in options.process_group_configs}
    expected_groups = {"all": {"server", "workers"}, "server": {"server"}, "worker": {"workers"}}[role]
    assert set(groups) == expected_groups | {"listener"}
    if "workers" in groups:
        assert [p.name for p in groups["workers"].process_configs] == ["worker_00", "worker_01", "worker_02"]
    if "server" in groups:
        assert [p.name for p in groups["server"].process_configs] == ["server"]
    if role == "all":
        # Workers stop first (highest priority), so they can still report to the server.
        assert groups["workers"].priority > groups["server"].priority > groups["listener"].priority
    argv = argv_of(options)
    if "server" in argv:
        assert argv["server"] == [
            *(PYTHON, "-m", "noetl.supervisor.entry", "noetl.server"),
            *("--host", "0.0.0.0", "--port", "8082"),
        ]
    for process in [p for name in expected_groups for p in groups[name].process_configs]:
        assert process.stopasgroup and process.killasgroup
        assert process.stopsignal == 15
        assert process.stopwaitsecs == (10 if process.name == "server" else 20)
        assert process.autorestart is RestartUnconditionally
        assert process.stdout_events_enabled and process.stderr_events_enabled
    (server,) = options.server_configs
    assert server["chmod"] == 0o700
    assert (server["username"], server["password"]) == (AUTH.username, AUTH.password)
    assert server["file"] == str(run_dir / "supervisor.sock")
    assert options.nodaemon


def test_server_starts_before_workers() -> None:
    text = render(load_settings({**ENV}), AUTH, PYTHON)
    assert text.index("[program:server]") < text.index("[program:worker]")
    assert "priority=100" in text.split("[program:server]")[1].split("[program:worker]")[0]
    assert "[group:workers]\nprograms=worker\npriority=200" in text


def test_no_secret_in_the_rendered_file() -> None:
    for role in ("all", "server", "worker"):
        text = render(load_settings({**ENV, "NOETL_ROLE": role}), AUTH, PYTHON)
        for secret in ("pg-secret-value", "api-secret-value", "nats-secret-value"):
            assert secret not in text


def test_masked_hides_the_control_password() -> None:
    text = render(load_settings(ENV), AUTH, PYTHON)
    assert AUTH.password in text
    assert AUTH.password not in masked(text, AUTH)


def test_root_says_so_to_avoid_the_crit_warning() -> None:
    assert "user=root" in render(load_settings(ENV), AUTH, PYTHON, run_as_root=True)
    assert "user=" not in render(load_settings(ENV), AUTH, PYTHON, run_as_root=False)


def test_control_credentials_are_new_for_every_run() -> None:
    assert ControlAuth.new() != ControlAuth.new()


def test_max_stop_seconds_covers_the_longest_group_and_the_listener() -> None:
    settings = load_settings({**ENV, "NOETL_STOP_TIMEOUT": "10", "NOETL_WORKER_STOP_TIMEOUT": "20"})
    # workers in parallel (20), then the server (10), the listener (2), a 1 s margin for each and the exit.
    assert max_stop_seconds(settings) == 20 + 10 + 2 + 4
    server_only = load_settings({**ENV, "NOETL_ROLE": "server", "NOETL_STOP_TIMEOUT": "10"})
    assert max_stop_seconds(server_only) == 10 + 2 + 3


def test_golden_embedded_services_start_first_and_postgres_runs_unprivileged(tmp_path: Path) -> None:
    # No POSTGRES_HOST, no NATS_URL. NOETL_HOME is set: its default depends on who runs the test.
    env = {"HOME": "/home/noetl", "NOETL_HOME": "/var/lib/noetl", "NOETL_RUN_DIR": "/run/noetl"}
    settings = load_settings(env)
    assert embedded.plan(settings) == embedded.Plan(postgres=True, nats=True)
    text = render(settings, AUTH, PYTHON, run_as_root=True)
    assert_golden(GOLDEN / "embedded.conf", text)
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    settings = load_settings({**env, "NOETL_RUN_DIR": str(run_dir)})
    options = parse_with_supervisor(render(settings, AUTH, PYTHON, run_as_root=False), tmp_path)
    groups = {g.name: g for g in options.process_group_configs}
    assert groups["services"].priority < groups["server"].priority < groups["workers"].priority
    # One priority per group: a program's own would only order it inside its group.
    for group in groups.values():
        assert {p.priority for p in group.process_configs} == {group.priority}, group.name
    assert [p.name for p in groups["services"].process_configs] == ["postgres", "nats"]
    postgres = next(p for p in groups["services"].process_configs if p.name == "postgres")
    assert postgres.stopsignal == 2  # SIGINT: PostgreSQL's fast shutdown
    assert "user=noetl-pg" in text


def test_embedded_plan_follows_what_is_configured() -> None:
    from noetl.supervisor.embedded import Plan, plan

    base = {"HOME": "/h"}
    assert plan(load_settings(base)) == Plan(postgres=True, nats=True)
    assert plan(load_settings({**base, "POSTGRES_HOST": "db"})) == Plan(postgres=False, nats=True)
    assert plan(load_settings({**base, "NATS_URL": "nats://n:4222"})) == Plan(postgres=True, nats=False)
    assert plan(load_settings({**base, "NOETL_EMBEDDED": "never"})) == Plan(postgres=False, nats=False)
    assert plan(load_settings({**base, "NOETL_ROLE": "worker"})) == Plan(postgres=False, nats=False)
    always = {**base, "NOETL_EMBEDDED": "always", "POSTGRES_HOST": "db", "NATS_URL": "nats://n:4222"}
    assert plan(load_settings(always)) == Plan(postgres=True, nats=True)


def test_max_stop_seconds_counts_the_embedded_services_group() -> None:
    settings = load_settings({"HOME": "/h", "NOETL_STOP_TIMEOUT": "10", "NOETL_WORKER_STOP_TIMEOUT": "20"})
    # workers (20) + server (10) + services (10) + listener (2), a 1 s margin for each and for the exit.
    assert max_stop_seconds(settings) == 20 + 10 + 10 + 2 + 5
