"""No value from the environment can inject a line, option or section into the supervisord config.

For every setting, any string hypothesis finds either is refused with a ConfigError, or renders into
a file that supervisor's own parser reads back with exactly the sections and options of a baseline
and with the intended commands and paths; and no secret value appears in it.
"""

from __future__ import annotations

import configparser
import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noetl.errors import ConfigError
from noetl.settings import FIELDS, load_settings
from noetl.supervisor.programs import programs_for
from noetl.supervisor.render import ControlAuth
from tests.unit.supervisor.conftest import argv_of, parse_with_supervisor, render

AUTH = ControlAuth(username="u", password="p")
PYTHON = "/venv/bin/python"
NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "x\n[program:evil]\ncommand=/bin/sh",
            "x\r\n[unix_http_server]",
            "%(here)s",
            "100%",
            "a ;comment",
            "a #comment",
            "'quoted\"",
            "127.0.0.1 --evil",
            "/tmp/x\n",
            "=\n=",
        ]
    ),
    st.text(alphabet=st.sampled_from(list("ab[];%#'\"\n\r =:/.-\\")), max_size=20),
)


def _shape(text: str) -> dict[str, set[str]]:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(text)
    return {section: set(parser[section]) for section in parser.sections()}


def _render(env: dict[str, str], run_dir: Path) -> str:
    base = {"HOME": "/home/u", "NOETL_RUN_DIR": str(run_dir), "POSTGRES_HOST": "db"}
    return render(load_settings({**base, **env}), AUTH, PYTHON)


@pytest.mark.parametrize("name", sorted(FIELDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NASTY)
def test_no_setting_can_inject_config(name: str, value: str) -> None:
    field = FIELDS[name]
    with tempfile.TemporaryDirectory() as tmp_dir, contextlib.chdir(tmp_dir):
        tmp = Path(tmp_dir)
        run_dir = tmp / "run"
        (run_dir / "logs").mkdir(parents=True)
        baseline = _render({}, run_dir)
        base = {"HOME": "/home/u", "NOETL_RUN_DIR": str(run_dir), "POSTGRES_HOST": "db"}
        if name == "home":
            del base["NOETL_RUN_DIR"]  # the run dir then derives from NOETL_HOME
        try:
            settings_ = load_settings({**base, field.env: value})
            text = render(settings_, AUTH, PYTHON)
        except ConfigError as exc:
            assert "\n" not in str(exc)
            if field.secret:
                assert value not in str(exc) or value in ("", "*", "**", "***")
            return
        # Same sections and options as the baseline (a role or worker count may add or remove programs).
        shape = _shape(text)
        assert set(shape) <= set(_shape(baseline)) | {"program:server", "program:worker", "program:postgres"}
        for section, options in shape.items():
            reference = _shape(baseline).get(section)
            if reference is not None:
                assert options == reference, section
        # supervisor itself reads back the intended commands and socket path.
        if settings_.run_dir != run_dir:
            settings_.run_dir.mkdir(parents=True, exist_ok=True)
            (settings_.run_dir / "logs").mkdir(exist_ok=True)
        options = parse_with_supervisor(text, tmp)
        argv = argv_of(options)
        for program in programs_for(settings_, PYTHON):
            process_name = program.name if program.numprocs == 1 and program.name == "server" else None
            if process_name:
                assert argv[process_name] == list(program.command)
        (server,) = options.server_configs
        assert server["file"] == str(settings_.run_dir / "supervisor.sock")
        if field.secret and value.strip() and len(value) > 3 and value not in baseline:
            assert value not in text
