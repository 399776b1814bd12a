"""The CLI front door: fast commands import nothing heavy; errors are one line with an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    *("fastapi", "uvicorn", "nats", "asyncpg", "docker", "kubernetes", "httpx", "jinja2", "starlette"),
    # `noetl ctl status` talks to supervisord without its client and reads /proc without psutil.
    *("supervisor", "xmlrpc", "psutil", "configparser"),
)

PROBE = """
import sys
from noetl.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("\\nIMPORTED=" + ",".join(heavy), file=sys.stderr)
"""


def _run(
    args: list[str], env: dict[str, str], heavy: tuple[str, ...] = HEAVY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(heavy)), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["ctl", "status"]])
def test_fast_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "NOETL_HOME": str(tmp_path)}
    done = _run(args, env)
    imported = done.stderr.rsplit("IMPORTED=", 1)[1].strip()
    assert imported == "", f"noetl {' '.join(args)} imported {imported}"


@pytest.mark.parametrize("json", [[], ["--json"]])
def test_ctl_status_answers_without_the_argument_parser_as_with_it(json: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "NOETL_HOME": str(tmp_path)}
    fast = _run(["ctl", "status", *json], env, heavy=("argparse",))
    assert fast.stderr.rsplit("IMPORTED=", 1)[1].strip() == ""
    # The same answer as through the parser (a flag takes that path): one line, exit 4.
    parsed = _run(["ctl", "--run-dir", str(tmp_path / "run"), "status", *json], env, heavy=("argparse",))
    assert parsed.stderr.rsplit("IMPORTED=", 1)[1].strip() == "argparse"
    assert fast.stderr == parsed.stderr.replace("argparse", "")
    assert "not running: no control socket" in fast.stderr
    assert (fast.stdout, parsed.stdout) == ("", "")


def test_ctl_status_with_nothing_running_is_one_line_and_exit_4(tmp_path: Path) -> None:
    env = {**os.environ, "NOETL_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "noetl", "ctl", "status"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 4
    assert done.stdout == ""
    socket_path = tmp_path / "run" / "supervisor.sock"
    expected = f"noetl: not running: no control socket at {socket_path} (start it with `noetl run`)\n"
    assert done.stderr == expected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"NOETL_PORT": "abc"}, "NOETL_PORT='abc' is not valid"),
        ({"NOETL_WORKERS": "-1"}, "NOETL_WORKERS='-1' is not valid"),
        ({"NOETL_ROLE": "boss"}, "NOETL_ROLE='boss' is not valid"),
    ],
)
def test_bad_setting_for_run_is_one_line_exit_2_nothing_started(
    env: dict[str, str], needle: str, tmp_path: Path
) -> None:
    full = {**os.environ, "NOETL_HOME": str(tmp_path / "home"), **env}
    done = subprocess.run(
        [sys.executable, "-m", "noetl", "run"], capture_output=True, text=True, env=full, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()  # nothing was created, nothing started


def test_config_check_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "NOETL_HOME": str(tmp_path), "POSTGRES_PASSWORD": "s3cret-value"}
    ok = subprocess.run(
        [sys.executable, "-m", "noetl", "config", "check"], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0 and "POSTGRES_PASSWORD=***" in ok.stdout and "s3cret-value" not in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "noetl", "config", "check"],
        capture_output=True,
        text=True,
        env={**env, "NOETL_LOG_FORMAT": "yaml"},
    )
    assert bad.returncode == 2 and bad.stderr.startswith("noetl: NOETL_LOG_FORMAT='yaml' is not valid")


def test_config_render_masks_the_control_password(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NOETL_HOME": str(tmp_path),
        "POSTGRES_HOST": "db",
        "POSTGRES_PASSWORD": "s3cret-value",
    }
    done = subprocess.run(
        [sys.executable, "-m", "noetl", "config", "render"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0
    assert "password=***" in done.stdout and "s3cret-value" not in done.stdout
    assert "[program:server]" in done.stdout


def test_version() -> None:
    from noetl import __version__

    done = subprocess.run([sys.executable, "-m", "noetl", "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == f"noetl {__version__}"


def _every_parser() -> list[list[str]]:
    import argparse

    from noetl.cli.parser import COMMANDS, build_parser

    found: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append([*prefix, name])
                    walk(sub, [*prefix, name])

    for name in COMMANDS:
        walk(build_parser(name), [])
    return found


@pytest.mark.parametrize("words", _every_parser(), ids=lambda w: " ".join(w) or "noetl")
def test_every_help_page_renders(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from noetl.cli.main import main

    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    assert "usage: noetl" in capsys.readouterr().out


def test_run_without_any_database_allowed_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "NOETL_HOME": str(tmp_path / "home"), "NOETL_EMBEDDED": "never"}
    env.pop("POSTGRES_HOST", None)
    done = subprocess.run([sys.executable, "-m", "noetl", "run"], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("noetl: POSTGRES_HOST is not set and NOETL_EMBEDDED=never")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("name", ["wörker", "a b", "x" * 65])
def test_worker_set_names_are_checked_like_settings(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from noetl.cli.main import main

    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    assert main(["worker", "start", "--name", name]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"noetl: --name={name!r} is not valid: expected 1-64 letters") and err.count("\n") == 1
    )
    assert not (tmp_path / "home").exists()  # refused before anything was written or started


def test_k8s_defaults_are_those_of_the_deploy_module() -> None:
    from pathlib import Path as P

    from noetl.cli.k8s import _options
    from noetl.cli.parser import build_parser
    from noetl.deploy.k8s import ClusterOptions

    parser = build_parser()
    for action in ("kind-create", "deploy", "reset", "remove"):
        assert _options(parser.parse_args(["k8s", action])) == ClusterOptions()
    given = parser.parse_args(
        ["k8s", "--cluster", "c2", "--timeout", "9", "kind-create", "--config", "k.yaml"]
    )
    assert _options(given) == ClusterOptions(cluster="c2", timeout=9, kind_config=P("k.yaml"))
