"""The README stays in step with the code: every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

from noetl.cli.parser import COMMANDS
from noetl.settings import FIELDS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for field in FIELDS.values():
        assert f"| `{field.env}` |" in README, field.env


def test_every_command_is_in_the_readme() -> None:
    for name in COMMANDS:
        assert f"`noetl {name}" in README, name


def test_the_readme_promise() -> None:
    assert "make run" in README and "make test" in README
