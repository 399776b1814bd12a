"""Request and response bodies of the API (docs/api.md), as pydantic models.

Inputs are bounded so that nothing a client sends can fail in PostgreSQL instead of in
validation: integers fit ``integer`` columns, strings hold no NUL character (``text`` and
``jsonb`` refuse it) and JSON values hold no NaN or infinity (``jsonb`` refuses them).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

INT4_MAX = 2**31 - 1
TOOL_KINDS = ("shell", "python", "http")
STATUSES = ("pending", "claimed", "completed", "failed", "dead")
FINISHED = ("completed", "failed", "dead")
WORKER_EVENTS = ("started", "progress", "completed", "failed")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _storable_json(value: Any) -> Any:
    """Reject what PostgreSQL's jsonb cannot store: NUL in strings, NaN and infinities."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("must not contain NaN or infinite numbers")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
JsonValue = Annotated[Any, AfterValidator(_storable_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
WorkerId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Attempt = Annotated[int, Field(ge=1, le=INT4_MAX)]
LeaseSeconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
Status = Literal["pending", "claimed", "completed", "failed", "dead"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- tools ------------------------------------------------------------------------------------


class ShellTool(_Strict):
    kind: Literal["shell"]
    command: Annotated[Text, Field(min_length=1)] | Annotated[list[Text], Field(min_length=1)]
    env: dict[Text, Text] | None = None
    cwd: Text | None = None


class PythonTool(_Strict):
    kind: Literal["python"]
    code: Annotated[Text, Field(min_length=1)]
    args: JsonObject | None = None


class HttpTool(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["http"]
    url: Annotated[Text, Field(min_length=1, max_length=8192, pattern=r"^https?://[^\s/]+")]
    method: Annotated[str, Field(pattern=r"^[A-Za-z]{1,16}$")] = "GET"
    headers: dict[Text, Text] | None = None
    json_body: JsonValue = Field(default=None, alias="json")
    body: Text | None = None
    timeout: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] | None = None


Tool = Annotated[ShellTool | PythonTool | HttpTool, Field(discriminator="kind")]


def tool_spec(tool: ShellTool | PythonTool | HttpTool) -> dict[str, Any]:
    """The tool as stored and handed to workers: exactly the fields the client gave."""
    spec = tool.model_dump(by_alias=True, exclude_unset=True)
    spec["kind"] = tool.kind
    if isinstance(tool, HttpTool):
        spec["method"] = tool.method.upper()
    return spec


# --- requests ---------------------------------------------------------------------------------


class SubmitRequest(_Strict):
    tool: Tool
    timeout: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = 300
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


class ClaimRequest(_Strict):
    worker_id: WorkerId
    lease_seconds: LeaseSeconds = 60


class HeartbeatRequest(_Strict):
    worker_id: WorkerId
    attempt: Attempt
    lease_seconds: LeaseSeconds = 60


class EventRequest(_Strict):
    worker_id: WorkerId
    attempt: Attempt
    type: Literal["started", "progress", "completed", "failed"]
    payload: JsonObject = Field(default_factory=dict)
    seq: Annotated[int, Field(ge=0, le=INT4_MAX)] = 0

    @model_validator(mode="after")
    def _failed_has_error(self) -> EventRequest:
        if self.type == "failed" and not isinstance(self.payload.get("error"), str):
            raise ValueError("a failed event needs payload.error, a readable string")
        return self


class ReleaseRequest(_Strict):
    worker_id: WorkerId
    attempt: Attempt


class WorkerRegistration(_Strict):
    worker_id: WorkerId
    name: Annotated[Text, Field(max_length=200)] = ""
    host: Annotated[Text, Field(max_length=253)] = ""
    pid: Annotated[int, Field(ge=0, le=INT4_MAX)] = 0
    concurrency: Annotated[int, Field(ge=1, le=100000)] = 1


class WorkerHeartbeat(_Strict):
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
    status: Literal["online", "offline"]
    registered_at: datetime
    heartbeat_at: datetime
    running: list[str]


class WorkerList(BaseModel):
    items: list[WorkerView]


class Problem(BaseModel):
    """Every error answer: one readable line."""

    detail: str
