"""The catalog: playbooks by path and version, and their parsed form for the engine.

A path's version grows by one each time different content is registered under it; registering
the same content again returns the version that holds it. Registrations of one path are
serialised by a transaction-scoped advisory lock on the path, so two racing registrations of new
content get consecutive versions instead of a unique-key error.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import asyncpg

from noetl.server.problems import NotFound

if TYPE_CHECKING:
    from noetl.engine.playbook import Playbook

KIND = "Playbook"
ENTRY_COLUMNS = "catalog_id, path, version, kind, name, description, created_at"
# Parsed playbooks kept in memory, by catalog_id (an entry's content never changes).
CACHE_SIZE = 256

_parsed: OrderedDict[int, Playbook] = OrderedDict()


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


async def register(conn: asyncpg.Connection, pb: Playbook) -> tuple[dict[str, Any], bool]:
    """Store ``pb`` (already validated) under its path; returns (entry, created)."""
    digest = content_hash(pb.content)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('noetl.catalog:' || $1))", pb.path)
        same = await conn.fetchrow(
            f"""
            SELECT {ENTRY_COLUMNS} FROM noetl.catalog WHERE path = $1 AND content_hash = $2
            ORDER BY version DESC LIMIT 1
            """,
            pb.path,
            digest,
        )
        if same is not None:
            return dict(same), False
        row = await conn.fetchrow(
            f"""
            INSERT INTO noetl.catalog (path, version, kind, name, description, content, content_hash)
            SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6
            FROM noetl.catalog WHERE path = $1
            RETURNING {ENTRY_COLUMNS}
            """,
            pb.path,
            KIND,
            pb.name,
            pb.description or "",
            pb.content,
            digest,
        )
    assert row is not None
    _remember(int(row["catalog_id"]), pb)
    return dict(row), True


async def latest(
    conn: asyncpg.Connection, kind: str | None, limit: int = 500, after: str | None = None
) -> list[dict[str, Any]]:
    """The latest version of up to ``limit`` paths (of ``kind`` when given) after ``after``, by path."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT ON (path) {ENTRY_COLUMNS} FROM noetl.catalog
        WHERE ($1::text IS NULL OR lower(kind) = lower($1)) AND ($3::text IS NULL OR path > $3)
        ORDER BY path, version DESC
        LIMIT $2
        """,
        kind,
        limit,
        after,
    )
    return [dict(r) for r in rows]


async def find(
    conn: asyncpg.Connection, path: str | None, version: int | None, catalog_id: int | None = None
) -> dict[str, Any]:
    """One entry with its content: by ``catalog_id``, or ``path`` at ``version`` (None: the latest)."""
    if catalog_id is not None:
        row = await conn.fetchrow(
            f"SELECT {ENTRY_COLUMNS}, content FROM noetl.catalog WHERE catalog_id = $1", catalog_id
        )
        if row is None:
            raise NotFound(f"no catalog entry with catalog_id {catalog_id}")
        return dict(row)
    row = await conn.fetchrow(
        f"""
        SELECT {ENTRY_COLUMNS}, content FROM noetl.catalog
        WHERE path = $1 AND ($2::int IS NULL OR version = $2)
        ORDER BY version DESC LIMIT 1
        """,
        path,
        version,
    )
    if row is None:
        known = await conn.fetchval("SELECT max(version) FROM noetl.catalog WHERE path = $1", path)
        if known is None:
            raise NotFound(f"no playbook {path!r} in the catalog (register it first)")
        raise NotFound(f"playbook {path!r} has no version {version} (latest is {known})")
    return dict(row)


async def playbook(conn: asyncpg.Connection, catalog_id: int) -> Playbook:
    """The parsed playbook of an entry (cached: parsing is the costly part of each transition)."""
    cached = _parsed.get(catalog_id)
    if cached is not None:
        _parsed.move_to_end(catalog_id)
        return cached
    content = await conn.fetchval("SELECT content FROM noetl.catalog WHERE catalog_id = $1", catalog_id)
    if content is None:
        raise NotFound(f"no catalog entry with catalog_id {catalog_id}")
    from noetl.engine.playbook import parse_playbook  # the engine loads at first use (noetl.lazy)

    pb = parse_playbook(content)
    _remember(catalog_id, pb)
    return pb


def _remember(catalog_id: int, pb: Playbook) -> None:
    _parsed[catalog_id] = pb
    _parsed.move_to_end(catalog_id)
    while len(_parsed) > CACHE_SIZE:
        _parsed.popitem(last=False)
