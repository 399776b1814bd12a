"""Batches of worker calls: the claims, and the events, that a worker's jobs ask at the same time.

Each item carries its command's id and the body of its single call (routes/commands.py) and is
answered in its place with the status and body that call would give; the request itself answers
200 unless the batch as a whole is malformed (422), too large (413) or cannot be served (503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from noetl.protocol.types import describe_validation
from noetl.server.models import ClaimAnswers, ClaimBatch, ClaimItem, EventAnswers, EventBatch, EventItem
from noetl.server.problems import refusal_answer
from noetl.server.queries import chains, command_batches
from noetl.server.queries.command_batches import ClaimAsk, EventAsk
from noetl.server.queries.commands import Recorded
from noetl.server.routes.commands import observed
from noetl.server.services import ServicesDep, error_responses

router = APIRouter(prefix="/api/commands", tags=["commands"])

_BATCH_ERRORS = error_responses(401, 403, 413, 422, 503)

Item = TypeVar("Item", bound=BaseModel)


def _validated(
    raw: Sequence[dict[str, Any]], model: type[Item], name: str
) -> tuple[dict[int, Item], dict[int, dict[str, Any]]]:
    """The valid items by position, and the 422 answers of the others."""
    items: dict[int, Item] = {}
    invalid: dict[int, dict[str, Any]] = {}
    for i, body in enumerate(raw):
        try:
            items[i] = model.model_validate(body)
        except ValidationError as exc:
            errors = [{**error, "loc": (name, i, *error["loc"])} for error in exc.errors()]
            invalid[i] = {"status": 422, "detail": describe_validation(errors)}
    return items, invalid


def _refused(exc: Exception) -> dict[str, Any]:
    status, detail = refusal_answer(exc)
    return {"status": status, "detail": detail}


@router.post("/claims", response_model=ClaimAnswers, responses=_BATCH_ERRORS)
async def claims(body: ClaimBatch, services: ServicesDep) -> dict[str, Any]:
    """Claim several commands in one statement: each item as ``POST /api/commands/{id}/claim``."""
    items, answers = _validated(body.claims, ClaimItem, "claims")
    order = list(items)
    asks = [
        ClaimAsk(it.command_id, it.worker_id, it.lease_seconds, it.request_id, it.start)
        for it in items.values()
    ]
    if asks:
        async with services.db.connection() as conn:
            outcomes = await command_batches.claim_all(conn, asks)
        for i, outcome in zip(order, outcomes, strict=True):
            if isinstance(outcome, Exception):
                answers[i] = _refused(outcome)
                continue
            services.metrics.claimed(outcome)
            answers[i] = {"status": 200, "claim": outcome}
    return {"answers": [answers[i] for i in range(len(body.claims))]}


@router.post("/events", response_model=EventAnswers, responses=_BATCH_ERRORS)
async def events(body: EventBatch, services: ServicesDep) -> dict[str, Any]:
    """Store several worker events in one transaction: each item as
    ``POST /api/commands/{id}/events``."""
    items, answers = _validated(body.events, EventItem, "events")
    order = list(items)
    asks = [
        EventAsk(
            it.command_id,
            it.worker_id,
            it.attempt,
            it.lease,
            it.type,
            it.payload,
            it.seq,
            chains.take_of(it.command_id, it.attempt, it.worker_id, it.take, it.lease_seconds),
        )
        for it in items.values()
    ]
    outcomes: list[Recorded | Exception] = []
    if asks:
        async with services.db.connection() as conn:
            outcomes = await command_batches.record_all(conn, asks)
    for i, outcome in zip(order, outcomes, strict=True):
        if isinstance(outcome, Exception):
            answers[i] = _refused(outcome)
            continue
        answers[i] = {"status": 200, "stored": outcome.stored, "next": observed(outcome, services)}
    return {"answers": [answers[i] for i in range(len(body.events))]}
