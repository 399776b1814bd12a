"""Reading playbook files and payloads for `noetl register`, `catalog` and `exec` (no I/O but files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noetl.errors import ConfigError
from noetl.tools.flags import parse_value

SUFFIXES = (".yaml", ".yml")


def read_text(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{flag} {str(path)!r}: cannot read it ({reason})") from None


def playbooks_in(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml file below ``directory``, sorted."""
    if not directory.is_dir():
        raise ConfigError(f"-d {str(directory)!r} is not a directory")
    found = sorted(p for p in directory.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not found:
        raise ConfigError(f"-d {str(directory)!r} holds no .yaml or .yml file")
    return found


def build_payload(payload: str | None, sets: list[str]) -> dict[str, Any]:
    """``--payload JSON|@file`` (JSON or YAML), then each ``--set key=value`` over it."""
    result: dict[str, Any] = {}
    if payload is not None:
        if payload.startswith("@"):
            path = Path(payload[1:])
            text = read_text(path, "--payload")
            result = _load_mapping(text, f"--payload {payload!r}", yaml_ok=path.suffix.lower() in SUFFIXES)
        else:
            result = _load_mapping(payload, "--payload", yaml_ok=False)
    for item in sets:
        key, found, value = item.partition("=")
        if not found or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        result[key.strip()] = parse_value(value)
    return result


def _load_mapping(text: str, where: str, yaml_ok: bool) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        if not yaml_ok:
            raise ConfigError(f"{where} is not valid JSON: {exc}") from None
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as yexc:
            raise ConfigError(f"{where} is not valid YAML: {' '.join(str(yexc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object (key: value pairs)")
    return data
