"""The http tool: ``url`` with optional ``method``, ``headers``, ``json`` or ``body``, ``timeout``.

Result: ``{"status", "headers", "body"}``, the body parsed as JSON when the response says it is
JSON, else text (cut at ``OUTPUT_LIMIT`` bytes with a marker). A status of 400 or more is a
failure carrying the same fields as its output; so are connection errors and timeouts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field

from noetl.protocol.types import JsonValue, Seconds, Strict, Text
from noetl.settings import mask_url
from noetl.tools.base import OUTPUT_LIMIT, Captured, Outcome, ToolContext, ToolError

# Bytes of response body read at most; JSON bodies within it are parsed, the rest is shown as text.
BODY_LIMIT = 4 * 1024 * 1024
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


KIND = "http"


class Args(Strict):
    """What an http command accepts (the server validates requests with it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["http"]
    url: Annotated[Text, Field(min_length=1, max_length=8192, pattern=r"^https?://[^\s/]+")]
    method: Annotated[str, Field(pattern=r"^[A-Za-z]{1,16}$")] = "GET"
    headers: dict[Text, Text] | None = None
    json_body: JsonValue = Field(default=None, alias="json")
    body: Text | None = None
    timeout: Seconds | None = None


def _check(spec: Mapping[str, Any], ctx: ToolContext) -> tuple[str, str, dict[str, str], float]:
    url = spec.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ToolError("http tool: `url` must be an http:// or https:// URL")
    method = spec.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise ToolError("http tool: `method` must be one of " + ", ".join(_METHODS))
    headers = spec.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ToolError("http tool: `headers` must be an object of strings")
    if "json" in spec and "body" in spec:
        raise ToolError("http tool: give `json` or `body`, not both")
    if "body" in spec and not isinstance(spec["body"], str):
        raise ToolError("http tool: `body` must be a string (use `json` for structured data)")
    timeout = spec.get("timeout", ctx.timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ToolError("http tool: `timeout` must be a positive number of seconds")
    return url, method.upper(), dict(headers), min(float(timeout), ctx.timeout)


def _body(content: bytes, content_type: str, more: bool) -> Any:
    if "json" in content_type.lower() and not more:
        try:
            return json.loads(content)
        except ValueError:
            pass  # said JSON, is not: show it as text
    kept = content[:OUTPUT_LIMIT]
    cut = len(content) - len(kept)
    return Captured(kept.decode("utf-8", errors="replace"), cut).shown() + ("\n[and more]" if more else "")


async def _read(response: Any) -> tuple[bytes, bool]:
    """At most ``BODY_LIMIT`` bytes of the body, and whether there was more."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > BODY_LIMIT:
            return bytes(content[:BODY_LIMIT]), True
    return bytes(content), False


async def run(spec: Mapping[str, Any], ctx: ToolContext) -> Outcome:
    """Send the request; ``completed`` with the response when its status is below 400, else ``failed``."""
    url, method, headers, timeout = _check(spec, ctx)
    shown = mask_url(url)
    kwargs: dict[str, Any] = {"headers": headers}
    if "json" in spec:
        kwargs["json"] = spec["json"]
    elif "body" in spec:
        kwargs["content"] = spec["body"].encode()
    try:
        # httpx's timeout bounds each step (connect, each read); asyncio.timeout bounds the whole.
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client,
            client.stream(method, url, **kwargs) as response,
        ):
            content, more = await _read(response)
    except (httpx.TimeoutException, TimeoutError):
        raise ToolError(f"{method} {shown}: no answer within {timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ToolError(f"{method} {shown}: {type(exc).__name__}: {exc}") from None
    fields = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _body(content, response.headers.get("content-type", ""), more),
    }
    if response.status_code >= 400:
        error = f"{method} {shown} answered {response.status_code} {response.reason_phrase}".rstrip()
        return Outcome(ok=False, error=error, output=fields)
    return Outcome(ok=True, result=fields)
