"""The child side of the duckdb tool: ``python duckdb_runner.py ANSWER_FILE``.

Reads ``{"query", "database"}`` as JSON on stdin, runs the statements in order and writes
``{"rows": [...]}`` (the last statement's rows as objects) or ``{"error": "..."}`` to ANSWER_FILE.
Values become JSON: dates and times as ISO strings, decimals as numbers, UUIDs and blobs as text.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import sys
import uuid
from typing import Any


def plain(value: Any) -> Any:
    """A DuckDB value as JSON data."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(data).decode()
    if isinstance(value, dict):
        return {str(key): plain(sub) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [plain(sub) for sub in value]
    return str(value)


def execute(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        return {"error": "duckdb tool: `query` must be a string"}
    try:
        import duckdb
    except ImportError:
        return {"error": "the duckdb tool needs the duckdb extra: pip install 'noetl[duckdb]'"}
    database = request.get("database") or ":memory:"
    try:
        conn = duckdb.connect(database)
    except duckdb.Error as exc:
        return {"error": f"cannot open database {database!r}: {_line(exc)}"}
    try:
        # execute() runs every statement of the text and keeps the last one's result.
        cursor = conn.execute(request["query"])
        if cursor.description is None:
            return {"rows": []}
        names = [column[0] for column in cursor.description]
        return {
            "rows": [
                {name: plain(v) for name, v in zip(names, row, strict=True)} for row in cursor.fetchall()
            ]
        }
    except duckdb.Error as exc:
        return {"error": _line(exc)}
    finally:
        conn.close()


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python duckdb_runner.py ANSWER_FILE", file=sys.stderr)
        return 2
    try:
        request = json.load(sys.stdin)
    except ValueError as exc:
        answer: dict[str, Any] = {"error": f"duckdb tool: the request is not JSON: {exc}"}
    else:
        answer = execute(request)
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(answer, fh, allow_nan=False)
    return 0 if "rows" in answer else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
