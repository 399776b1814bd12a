"""Request and response bodies of the API (docs/api.md), as pydantic models.

The shared strict types live in ``noetl.protocol.types``; each tool kind's arguments live in its
module under ``noetl.tools``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

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
from noetl.protocol.words import (
    BATCH_LIMIT,
    TAKE_LIMIT,
    EventType,
    ExecutionStatus,
    Status,
    StepStatus,
    WorkerEvent,
    WorkerState,
)
from noetl.tools.registry import Tool

# --- requests ---------------------------------------------------------------------------------


class SubmitRequest(Strict):
    tool: Tool
    timeout: Seconds = 300
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


class ClaimRequest(Strict):
    worker_id: WorkerId
    lease_seconds: LeaseSeconds = 60
    # The worker's random id for this claim: the same call retried after its answer was lost gets
    # the same lease back (same attempt, same secret) instead of 409.
    request_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    # Record the attempt's `started` event with the claim: what a worker reports at once anyway,
    # in the claim's own statement instead of a second call and transaction.
    start: bool = False


# The random secret of one attempt's lease, from the claim answer: a call that names the attempt
# without it (another worker, a client guessing) is refused with 409.
LeaseSecret = Annotated[str, Field(min_length=1, max_length=200)]


class HeartbeatRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt
    lease: LeaseSecret
    lease_seconds: LeaseSeconds = 60


class EventRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt
    lease: LeaseSecret
    type: WorkerEvent
    payload: JsonObject = Field(default_factory=dict)
    seq: Annotated[int, Field(ge=0, le=INT4_MAX)] = 0
    # Chained dispatch: the sender of a final event can run this many more commands now (the
    # slot this one frees); the server claims one of the commands this end creates for it, in the
    # same transaction, and answers it in ``next``. 0 (or absent: older workers) hands nothing.
    take: Annotated[int, Field(ge=0, le=TAKE_LIMIT)] = 0
    lease_seconds: LeaseSeconds = 60  # the handed command's lease, as a claim's

    @model_validator(mode="after")
    def _failed_has_error(self) -> EventRequest:
        if self.type == "failed" and not isinstance(self.payload.get("error"), str):
            raise ValueError("a failed event needs payload.error, a readable string")
        return self


# A worker's calls of one kind that arrive together go in one request (docs/api.md "Batches").
# Each item is validated on its own, so one bad item is answered 422 while the others go on.


class ClaimItem(ClaimRequest):
    command_id: UUID


class EventItem(EventRequest):
    command_id: UUID


class ClaimBatch(Strict):
    claims: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=BATCH_LIMIT)]


class EventBatch(Strict):
    events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=BATCH_LIMIT)]


class RegisterRequest(Strict):
    # YAML text, or base64 of it (NoETL's clients send either).
    content: Annotated[Text, Field(min_length=1)]
    resource_type: Literal["Playbook", "playbook"] = "Playbook"


class CatalogListRequest(Strict):
    resource_type: Text | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 500
    # The `next` of the previous page: the last path it held.
    after: Annotated[Text, Field(max_length=1000)] | None = None


class ResourceRequest(Strict):
    path: Annotated[Text, Field(min_length=1, max_length=1000)]
    version: Annotated[int, Field(ge=1, le=INT4_MAX)] | Literal["latest"] | None = None


class ExecuteRequest(Strict):
    """NoETL's ``/api/execute``: a playbook by ``path`` (and ``version``) or by ``catalog_id``."""

    path: Annotated[Text, Field(min_length=1, max_length=1000)] | None = None
    catalog_id: Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[0-9]{1,18}$")] | None = None
    version: Annotated[int, Field(ge=1, le=INT4_MAX)] | Literal["latest"] | None = None
    payload: JsonObject | None = None
    workload: JsonObject | None = None  # NoETL's synonym of payload
    # Sent by NoETL's own clients; accepted and not used here.
    resource_type: Literal["Playbook", "playbook"] | None = None
    merge: bool | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ExecuteRequest:
        if self.path is None and self.catalog_id is None:
            raise ValueError("give the playbook's path (or its catalog_id)")
        if self.payload is not None and self.workload is not None:
            raise ValueError("give payload or workload (synonyms), not both")
        return self


class CancelRequest(Strict):
    reason: Annotated[Text, Field(max_length=1000)] | None = None


class ReleaseRequest(Strict):
    worker_id: WorkerId
    attempt: Attempt
    lease: LeaseSecret


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
    lease: str  # this attempt's lease secret: every later call of the attempt presents it
    tool: dict[str, Any]
    timeout: float
    lease_until: datetime
    started: bool = False  # the `started` event was recorded with the claim (``start`` asked it)


class ItemAnswer(BaseModel):
    """One item of a batch: the status its single call would answer, and that call's detail."""

    status: int
    detail: str | None = None


class ClaimAnswer(ItemAnswer):
    claim: Claimed | None = None  # with status 200


class ClaimAnswers(BaseModel):
    answers: list[ClaimAnswer]  # in the order of the request's items


class Handing(BaseModel):
    """An event's answer may carry the command claimed for its sender (``take``); without one
    the answer is what it was before chained dispatch: no ``next`` key at all."""

    next: Claimed | None = None

    @model_serializer(mode="wrap")
    def _next_only_when_handed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("next") is None:
            data.pop("next", None)
        return data


class EventAnswer(Handing, ItemAnswer):
    stored: bool | None = None  # with status 200


class EventAnswers(BaseModel):
    answers: list[EventAnswer]


class Lease(BaseModel):
    lease_until: datetime


class Stored(Handing):
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
    status: ExecutionStatus
    # Set for a playbook's execution; None for a `noetl submit` one.
    path: str | None = None
    version: int | None = None
    catalog_id: str | None = None
    parent_execution_id: UUID | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class Iterations(BaseModel):
    """A loop step's iterations by state (counters: the items are never in an answer)."""

    total: int
    done: int
    failed: int
    running: int


class StepView(BaseModel):
    name: str
    status: StepStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    result: Any = None
    error: str | None = None
    iterations: Iterations | None = None


class ExecutionView(ExecutionSummary):
    """Summary first: a playbook's execution lists its steps (the events are paged by
    ``/events``); a `noetl submit` one lists its command and events instead."""

    workload: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    steps: list[StepView] | None = None
    commands: list[CommandView] | None = None
    events: list[EventView] | None = None


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    # How many match, counted up to paging.TOTAL_CAP; `total_capped` says there are more.
    total: int
    total_capped: bool = False
    limit: int
    offset: int
    # Pass as `cursor` for the next page; null on the last one.
    next: str | None = None


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
    # Pass as `after` for the next page (the last worker_id); null on the last one.
    next: str | None = None


class Problem(BaseModel):
    """Every error answer: one readable line."""

    detail: str


# --- the catalog and playbook executions (NoETL's shapes) ------------------------------------


class CatalogEntry(BaseModel):
    path: str
    version: int
    kind: str
    name: str
    description: str
    created_at: datetime
    catalog_id: str


class CatalogEntries(BaseModel):
    entries: list[CatalogEntry]
    # Pass as `after` for the next page (the last path); null on the last one.
    next: str | None = None


class CatalogResource(CatalogEntry):
    content: str


class Registered(BaseModel):
    status: Literal["success"] = "success"
    path: str
    version: int
    catalog_id: str
    kind: str
    message: str


class Started(BaseModel):
    execution_id: str
    status: Literal["started"] = "started"


class PlaybookEvent(BaseModel):
    event_id: int
    event_type: EventType
    node_name: str | None
    status: str | None
    created_at: datetime
    result: Any = None
    error: str | None = None
    # An iteration's call.done / call.error / call.retry: the loop item's index.
    iteration: int | None = None
    # A call.retry: the attempt that failed and is retried (1 for the first).
    attempt: int | None = None


class PlaybookEvents(BaseModel):
    items: list[PlaybookEvent]
    # Pass as `after` for the next page (the last event_id); null when this page was not full.
    next: int | None = None


class LoopProgress(Iterations):
    step: str


class Progress(BaseModel):
    total_steps: int
    completed_steps: int
    running_steps: int
    failed_steps: int


class ExecutionProgress(BaseModel):
    execution_id: UUID
    status: ExecutionStatus
    current_step: str | None
    progress: Progress
    # Each loop step's iterations by state (counters, whatever the loop's size).
    loops: list[LoopProgress] = []
    is_cancelled: bool


class Cancelled(BaseModel):
    execution_id: UUID
    status: ExecutionStatus
