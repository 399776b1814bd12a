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
