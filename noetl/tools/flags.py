"""Reading `noetl submit KIND` flag values: ``KEY=VALUE`` pairs and values that may be JSON."""

from __future__ import annotations

import json
from typing import Any

from noetl.errors import ConfigError


def parse_value(text: str) -> Any:
    """JSON when it parses (``3``, ``true``, ``{"a": 1}``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(items: list[str], flag: str, sep: str = "=") -> list[tuple[str, str]]:
    """``["A=1", "B=x"]`` -> ``[("A", "1"), ("B", "x")]``; a pair without ``sep`` is a usage error."""
    pairs = []
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY{sep}VALUE")
        pairs.append((key.strip(), value))
    return pairs
