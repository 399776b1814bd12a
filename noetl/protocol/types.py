"""The strict JSON types of the API, shared by the server's models and the tool kinds' arguments.

Inputs are bounded so that nothing a client sends can fail in PostgreSQL instead of in
validation: integers fit ``integer`` columns, strings hold no NUL character (``text`` and
``jsonb`` refuse it) and JSON values hold no NaN or infinity (``jsonb`` refuses them).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

INT4_MAX = 2**31 - 1
Seconds = Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)]


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


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
