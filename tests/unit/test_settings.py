"""Settings: the validation table, precedence, TOML files and secret masking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from noetl.errors import ConfigError
from noetl.settings import FIELDS, load_settings

BASE = {"HOME": "/home/u"}


def test_defaults() -> None:
    s = load_settings(BASE)
    assert (s.host, s.port, s.role, s.workers) == ("0.0.0.0", 8082, "all", 2)
    home = Path("/var/lib/noetl") if os.geteuid() == 0 else Path("/home/u/.noetl")
    assert s.home == home
    assert s.run_dir == home / "run"
    assert load_settings({**BASE, "NOETL_HOME": "~/x"}).home == Path("/home/u/x")
    assert s.server_url == "http://127.0.0.1:8082"
    assert s.postgres_host is None
    assert s.sources["port"] == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOETL_PORT": "abc"}, "NOETL_PORT='abc' is not valid: expected a whole number from 1 to 65535"),
        ({"NOETL_PORT": "70000"}, "NOETL_PORT='70000' is not valid: expected a whole number from 1 to 65535"),
        ({"NOETL_PORT": "0"}, "NOETL_PORT='0' is not valid"),
        ({"NOETL_WORKERS": "-1"}, "NOETL_WORKERS='-1' is not valid: expected a whole number from 1 to 64"),
        ({"NOETL_WORKERS": "two"}, "NOETL_WORKERS='two' is not valid"),
        ({"NOETL_ROLE": "boss"}, "NOETL_ROLE='boss' is not valid: expected one of: all, server, worker"),
        ({"NOETL_LOG_FORMAT": "xml"}, "NOETL_LOG_FORMAT='xml' is not valid: expected one of: text, json"),
        ({"NOETL_LOG_LEVEL": "loud"}, "NOETL_LOG_LEVEL='loud' is not valid"),
        ({"NOETL_ENABLE_UI": "maybe"}, "NOETL_ENABLE_UI='maybe' is not valid: expected true or false"),
        ({"NOETL_STOP_TIMEOUT": "0"}, "NOETL_STOP_TIMEOUT='0' is not valid"),
        ({"NOETL_WORKER_STOP_TIMEOUT": "1.5x"}, "NOETL_WORKER_STOP_TIMEOUT='1.5x' is not valid"),
        ({"NOETL_HOST": "a b"}, "NOETL_HOST='a b' is not valid: expected a host name or IP address"),
        ({"NOETL_HOME": "/x\n[program:evil]"}, "NOETL_HOME='/x\\n[program:evil]' is not valid"),
        ({"NOETL_RUN_DIR": "/tmp/a;b"}, "NOETL_RUN_DIR='/tmp/a;b' is not valid: expected a path without ';'"),
        ({"NATS_URL": "http://x"}, "NATS_URL='http://x' is not valid: expected a URL like nats://host:port"),
        ({"NOETL_SERVER_URL": "localhost:8082"}, "NOETL_SERVER_URL='localhost:8082' is not valid"),
        ({"POSTGRES_PORT": "5432x"}, "POSTGRES_PORT='5432x' is not valid"),
        ({"NOETL_NATS_SUBJECT": "noetl.>"}, "NOETL_NATS_SUBJECT='noetl.>' is not valid"),
    ],
)
def test_bad_values_name_the_variable_value_and_what_is_allowed(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, **env})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_secrets_are_masked_in_errors_repr_and_shown_values() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "POSTGRES_PASSWORD": "hunter2\nx"})
    assert "hunter2" not in str(err.value)
    assert "POSTGRES_PASSWORD='***'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "NATS_URL": "nats://me:hunter2@host:99999"})
    assert "hunter2" not in str(err.value)
    s = load_settings(
        {
            **BASE,
            "POSTGRES_PASSWORD": "hunter2",
            "NOETL_API_TOKEN": "tok-hunter2",
            "NATS_URL": "nats://me:hunter2@h:4222",
        }
    )
    assert "hunter2" not in repr(s)
    assert s.shown("nats_url") == "nats://me:***@h:4222"
    assert s.shown("postgres_password") == "***"
    assert s.postgres_password == "hunter2"


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "noetl.toml"
    config.write_text('port = 9000\nworkers = 3\nrole = "worker"\nenable_ui = true\n')
    env = {**BASE, "NOETL_CONFIG": str(config), "NOETL_WORKERS": "5"}
    s = load_settings(env, flags={"role": "server", "host": None})
    assert s.port == 9000 and s.sources["port"] == f"port in {config}"
    assert s.workers == 5 and s.sources["workers"] == "NOETL_WORKERS"
    assert s.role == "server" and s.sources["role"] == "--role"
    assert s.enable_ui is True
    assert s.host == "0.0.0.0"
    assert s.server_url == "http://127.0.0.1:9000"


def test_toml_file_may_use_a_noetl_table(tmp_path: Path) -> None:
    config = tmp_path / "noetl.toml"
    config.write_text("[noetl]\nport = 9001\n")
    assert load_settings({**BASE, "NOETL_CONFIG": str(config)}).port == 9001


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = \n", "is not valid TOML"),
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("port = 'abc'\n", "port in "),
        ("port = [1, 2]\n", "expected a string, number or boolean"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "noetl.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "NOETL_CONFIG": str(config)})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({**BASE, "NOETL_CONFIG": str(tmp_path / "nope.toml")})


def test_to_env_round_trips() -> None:
    s = load_settings({**BASE, "NOETL_PORT": "9100", "NOETL_ENABLE_UI": "yes", "POSTGRES_HOST": "db"})
    again = load_settings(s.to_env())
    assert again == s


def test_every_field_has_help_and_an_env_name() -> None:
    for name, field in FIELDS.items():
        assert field.help, name
        assert field.env.isupper(), name


def test_the_settings_dataclass_has_exactly_the_fields_of_the_table() -> None:
    import dataclasses
    import typing

    from noetl.settings import Settings

    names = [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]
    assert names == list(FIELDS)
    # Each default is of the type the dataclass declares; run_dir and server_url are derived when unset.
    hints = typing.get_type_hints(Settings)
    for name, field in FIELDS.items():
        if name in ("run_dir", "server_url"):
            assert field.default is None and None not in typing.get_args(hints[name]), name
        else:
            assert isinstance(field.default, hints[name]), (name, hints[name])


def test_flags_come_from_the_table_and_name_themselves_in_errors() -> None:
    import argparse

    from noetl.settings import add_flags, flag_values

    flagged = [name for name, field in FIELDS.items() if field.flag]
    assert len({FIELDS[name].flag for name in flagged}) == len(flagged)
    parser = argparse.ArgumentParser()
    add_flags(parser, *flagged)
    args = parser.parse_args(["--port", "9001", "--concurrency", "7", "--run-dir", "/tmp/r"])
    values = flag_values(args)
    assert values["port"] == "9001" and values["host"] is None
    s = load_settings(BASE, flags=values)
    assert (s.port, s.worker_concurrency, s.run_dir) == (9001, 7, Path("/tmp/r"))
    assert (s.sources["port"], s.sources["worker_concurrency"]) == ("--port", "--concurrency")
    with pytest.raises(ConfigError, match=r"^--concurrency='0' is not valid: expected a whole number"):
        load_settings(BASE, flags=flag_values(parser.parse_args(["--concurrency", "0"])))
    with pytest.raises(ValueError, match="no flag"):
        add_flags(argparse.ArgumentParser(), "postgres_password")


def _every_parser() -> list[tuple[str, object]]:
    import argparse

    from noetl.cli.parser import COMMANDS, build_parser
    from noetl.server.__main__ import build_parser as server_parser
    from noetl.worker.__main__ import build_parser as worker_parser

    found: list[tuple[str, object]] = []

    def walk(parser: argparse.ArgumentParser, label: str) -> None:
        found.append((label, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{label} {name}")

    for command in COMMANDS:
        walk(build_parser(command), "noetl")
    walk(server_parser(), "python -m noetl.server")
    walk(worker_parser(), "python -m noetl.worker")
    return found


def test_no_command_declares_a_settings_flag_by_hand() -> None:
    by_flag = {field.flag: name for name, field in FIELDS.items() if field.flag}
    seen = set()
    for label, parser in _every_parser():
        for action in parser._actions:  # type: ignore[attr-defined]
            for option in action.option_strings:
                if option in by_flag or action.dest in FIELDS:
                    name = by_flag.get(option, action.dest)
                    assert action.dest == name and action.option_strings == [FIELDS[name].flag], (
                        label,
                        option,
                    )
                    assert action.help.endswith(f"({FIELDS[name].env})"), (label, option)
                    seen.add(name)
    assert seen == set(by_flag.values())  # every flag in the table is used by some command


def test_names_are_ascii_letters_digits_dash_underscore() -> None:
    from noetl.settings import check_name

    assert check_name("--name", "blue-2_x") == "blue-2_x"
    for bad in ("wörker", "٣", "a b", "", "x" * 65, "a/b"):
        with pytest.raises(ConfigError, match=r"^--name=.* is not valid: expected 1-64 letters"):
            check_name("--name", bad)


def test_readme_rows_name_each_flag() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for field in FIELDS.values():
        flag = f"`{field.flag}`" if field.flag else ""
        assert f"| `{field.env}` | {flag} |" in readme, field.env


def test_paths_are_absolute_and_without_dot_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """supervisord collapses `..` in the socket path; the settings must name the same file it uses."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    settings = load_settings({"NOETL_HOME": "../home"})
    assert settings.home == tmp_path / "home"
    assert ".." not in str(settings.run_dir)
