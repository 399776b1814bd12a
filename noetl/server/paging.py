"""Paging by key: a page ends with ``next``, an opaque cursor naming its last row's sort key.

A client passes ``next`` back as ``cursor`` (or ``after``) for the following page. Each page is one
index range scan from the key on, however deep the client has paged, so no request walks past
millions of rows (as ``OFFSET`` does); rows inserted meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from noetl.server.problems import Invalid

# How far ``total`` counts: enough for people, bounded for the database (no count(*) over a table).
TOTAL_CAP = 10_000


def encode(*key: Any) -> str:
    """The cursor for a row whose sort key is ``key`` (strings and numbers)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSOR = "cursor is not a `next` value this server returned; start again without it"


def decode(cursor: str, size: int) -> list[Any]:
    """The key a cursor names; ``Invalid`` (422) when it is not one this server made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        key = None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str | int) for k in key):
        raise Invalid(BAD_CURSOR)
    return key


def time_and_id(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) key of a cursor over a table listed newest first."""
    created, row_id = decode(cursor, 2)
    try:
        return datetime.fromisoformat(str(created)), UUID(str(row_id))
    except ValueError:
        raise Invalid(BAD_CURSOR) from None
