"""Request and response bodies of the API (docs/api.md), as pydantic models.

The shared strict types live in ``noetl.protocol.types``; each tool kind's arguments live in its
module under ``noetl.tools``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from noetl.protocol.types import (
    INT4_MAX,
    Attempt,
    JsonObject,
    LeaseSeconds,
    Seconds,
    Strict,
    Text,
    WorkerId,
)
from noetl.protocol.words import Status, WorkerEvent, WorkerState
from noetl.tools.registry import Tool

# --- requests ---------------------------------------------------------------------------------


class SubmitRequest(Strict):
    tool: Tool
    timeout: Seconds = 300
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


class ClaimRequest(Strict):
    worker_id: WorkerId
    lease_seconds: LeaseSeconds = 60


class HeartbeatRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt
    lease_seconds: LeaseSeconds = 60


class EventRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt
    type: WorkerEvent
    payload: JsonObject = Field(default_factory=dict)
    seq: Annotated[int, Field(ge=0, le=INT4_MAX)] = 0

    @model_validator(mode="after")
    def _failed_has_error(self) -> EventRequest:
        if self.type == "failed" and not isinstance(self.payload.get("error"), str):
            raise ValueError("a failed event needs payload.error, a readable string")
        return self


class ReleaseRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt


class WorkerRegistration(Strict):
    worker_id: WorkerId
    name: Annotated[Text, Field(max_length=200)] = ""
    host: Annotated[Text, Field(max_length=253)] = ""
    pid: Annotated[int, Field(ge=0, le=INT4_MAX)] = 0
    concurrency: Annotated[int, Field(ge=1, le=100000)] = 1


class WorkerHeartbeat(Strict):
    running: Annotated[list[Annotated[Text, Field(max_length=200)]], Field(max_length=100000)] = Field(
        default_factory=list
    )


# --- responses --------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    postgres: bool
    nats: bool


class Submitted(BaseModel):
    execution_id: UUID
    command_id: UUID


class Claimed(BaseModel):
    command_id: UUID
    execution_id: UUID
    attempt: int
    tool: dict[str, Any]
    timeout: float
    lease_until: datetime


class Lease(BaseModel):
    lease_until: datetime


class Stored(BaseModel):
    stored: bool


class Done(BaseModel):
    status: Literal["ok"] = "ok"


class CommandView(BaseModel):
    command_id: UUID
    execution_id: UUID
    status: Status
    tool: dict[str, Any]
    timeout: float
    attempt: int
    max_attempts: int
    lost_leases: int
    worker_id: str | None
    lease_until: datetime | None
    published_at: datetime | None
    claimed_at: datetime | None
    finished_at: datetime | None
    result: Any = None
    error: str | None
    created_at: datetime
    updated_at: datetime


class EventView(BaseModel):
    event_id: int
    execution_id: UUID
    command_id: UUID | None
    type: str
    payload: dict[str, Any]
    worker_id: str | None
    attempt: int
    seq: int
    created_at: datetime


class ExecutionSummary(BaseModel):
    execution_id: UUID
    status: Status
    created_at: datetime
    updated_at: datetime


class ExecutionView(ExecutionSummary):
    commands: list[CommandView]
    events: list[EventView]


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    total: int
    limit: int
    offset: int


class WorkerView(BaseModel):
    worker_id: str
    name: str
    host: str
    pid: int
    concurrency: int
    status: WorkerState
    registered_at: datetime
    heartbeat_at: datetime
    running: list[str]


class WorkerList(BaseModel):
    items: list[WorkerView]


class Problem(BaseModel):
    """Every error answer: one readable line."""

    detail: str
