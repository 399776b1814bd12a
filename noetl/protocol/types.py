"""The strict JSON types of the API, shared by the server's models and the tool kinds' arguments.

Inputs are bounded so that nothing a client sends can fail in PostgreSQL instead of in
validation: integers fit ``integer`` columns, strings hold no NUL character (``text`` and
``jsonb`` refuse it) and JSON values hold no NaN or infinity (``jsonb`` refuses them).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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


def _not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
# Text with something in it besides white space.
NonBlank = Annotated[Text, BeforeValidator(_not_blank)]
JsonValue = Annotated[Any, AfterValidator(_storable_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
WorkerId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Attempt = Annotated[int, Field(ge=1, le=INT4_MAX)]
LeaseSeconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]


class Strict(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


def describe_validation(
    errors: Sequence[Mapping[str, Any]], limit: int = 3, tags: Collection[str] = ()
) -> str:
    """Turn pydantic errors into one line: ``tool.command: Input should be ...; timeout: ...``.

    ``tags`` are the names of a discriminated union's branches (the tool kinds), left out of the
    path: ``tool.shell.command`` reads ``tool.command``.
    """
    parts = []
    for error in errors[:limit]:
        loc = [str(p) for p in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid")
            parts.append(f"the body is not valid JSON ({reason} at character {loc[-1] if loc else '?'})")
            continue
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc if len(loc) == 1 else loc[1:]
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "tool" and p in tags)]
        where = ".".join(loc) or "request"
        msg = str(error.get("msg", "invalid"))
        parts.append(f"{where}: {msg}")
    more = len(errors) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts) or "invalid request"
