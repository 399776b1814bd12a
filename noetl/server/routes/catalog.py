"""The catalog (NoETL's calls): register a playbook, list the latest versions, read one entry.

A playbook is validated at registration (``noetl.engine.playbook.parse_playbook``): a broken one
gets 422 with one line naming the step and the key, never a version that fails later.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from noetl.server.models import (
    CatalogEntries,
    CatalogListRequest,
    CatalogResource,
    Registered,
    RegisterRequest,
    ResourceRequest,
)
from noetl.server.problems import Invalid
from noetl.server.queries import catalog
from noetl.server.services import ServicesDep, error_responses

router = APIRouter(tags=["catalog"])

# A playbook's YAML always holds a ':'; base64 never does. Padding may be absent, and line breaks
# (the `base64` tool wraps at 76 characters) are ignored.
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def decode_content(content: str) -> str:
    """The YAML text: ``content`` itself, or what it decodes to when it is base64 of UTF-8 text."""
    compact = "".join(content.split())
    if not _BASE64.match(compact):
        return content
    padded = compact + "=" * (-len(compact) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded) if "-" in padded or "_" in padded else base64.b64decode(padded)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return content


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "catalog_id": str(row["catalog_id"])}


@router.post(
    "/api/catalog/register", response_model=Registered, responses=error_responses(401, 413, 422, 503)
)
async def register(body: RegisterRequest, services: ServicesDep) -> dict[str, Any]:
    """Validate and store a playbook; the same content again returns its existing version."""
    from noetl.engine.playbook import PlaybookError, parse_playbook  # the engine loads at first use

    try:
        pb = parse_playbook(decode_content(body.content))
    except PlaybookError as exc:
        raise Invalid(str(exc)) from None
    async with services.db.connection() as conn:
        row, created = await catalog.register(conn, pb)
    message = (
        f"registered {row['path']} version {row['version']}"
        if created
        else f"{row['path']} version {row['version']} already holds this content"
    )
    return {**_entry(row), "message": message}


@router.post("/api/catalog/list", response_model=CatalogEntries, responses=error_responses(401, 422, 503))
async def list_entries(body: CatalogListRequest, services: ServicesDep) -> dict[str, Any]:
    """The latest version of each path."""
    async with services.db.connection("read") as conn:
        rows = await catalog.latest(conn, body.resource_type, body.limit, body.after)
    return _page(rows, body.limit)


@router.get("/api/catalog", response_model=CatalogEntries, responses=error_responses(422, 503))
async def list_get(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    after: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    """The latest version of each path (for people and browsers); page on with ``after=<next>``."""
    async with services.db.connection("read") as conn:
        rows = await catalog.latest(conn, None, limit, after)
    return _page(rows, limit)


def _page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    return {"entries": [_entry(r) for r in rows], "next": rows[-1]["path"] if len(rows) == limit else None}


@router.post(
    "/api/catalog/resource", response_model=CatalogResource, responses=error_responses(401, 404, 422, 503)
)
async def resource(body: ResourceRequest, services: ServicesDep) -> dict[str, Any]:
    """One entry with its content; ``version`` a number, "latest" or absent (the latest)."""
    version = body.version if isinstance(body.version, int) else None
    async with services.db.connection() as conn:
        row = await catalog.find(conn, body.path, version)
    return _entry(row)


@router.get(
    "/api/catalog/{path:path}", response_model=CatalogResource, responses=error_responses(404, 422, 503)
)
async def resource_get(
    path: str, services: ServicesDep, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> dict[str, Any]:
    """One entry with its content (the latest version unless ``version`` is given)."""
    async with services.db.connection() as conn:
        row = await catalog.find(conn, path, version)
    return _entry(row)
