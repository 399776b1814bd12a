"""The http tool: ``url`` with optional ``method``, ``headers``, ``json`` or ``body``, ``timeout``.

Result: ``{"status", "headers", "body"}``, the body parsed as JSON when the response says it is
JSON, else text (cut at ``OUTPUT_LIMIT`` bytes with a marker). A status of 400 or more is a
failure carrying the same fields as its output; so are connection errors and timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from noetl.errors import ConfigError
from noetl.protocol.types import JsonValue, Seconds, Strict, Text
from noetl.settings import mask_url
from noetl.tools.base import OUTPUT_LIMIT, Captured, Outcome, ToolContext, ToolError
from noetl.tools.flags import parse_pairs

KIND = "http"
HELP = "make an HTTP request"
# Bytes of response body read at most; JSON bodies within it are parsed, the rest is shown as text.
BODY_LIMIT = 4 * 1024 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _method(value: str) -> str:
    method = value.upper()
    if method not in METHODS:
        raise ValueError("must be one of " + ", ".join(METHODS))
    return method


class Args(Strict):
    """What an http command accepts; the server validates requests and the worker runs them with it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["http"]
    url: Annotated[Text, Field(min_length=1, max_length=8192, pattern=r"^https?://[^\s/?#]+")]
    method: Annotated[str, AfterValidator(_method)] = "GET"
    headers: dict[Text, Text] | None = None
    json_body: JsonValue = Field(default=None, alias="json")
    body: Text | None = None
    # Never longer than the command's own timeout.
    timeout: Seconds | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Args:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError("give `json` or `body`, not both")
        return self


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit http`` flags."""
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET", help="one of " + ", ".join(METHODS))
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="header (repeat)")
    parser.add_argument("--json", dest="json_body", metavar="JSON", help="JSON request body")


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit http`` sends."""
    tool: dict[str, Any] = {"kind": KIND, "url": args.url, "method": args.method.upper()}
    if args.header:
        tool["headers"] = {k: v.strip() for k, v in parse_pairs(args.header, "--header", ":")}
    if args.json_body is not None:
        try:
            tool["json"] = json.loads(args.json_body)
        except ValueError as exc:
            raise ConfigError(f"--json is not valid JSON: {exc}") from None
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`."""
    return f"http: {tool.get('method', 'GET')} {mask_url(str(tool.get('url', '')))}"


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


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Send the request; ``completed`` with the response when its status is below 400, else ``failed``."""
    import httpx  # here, not at the top: `noetl --help` lists this kind's flags and must stay fast

    url, method = args.url, args.method
    timeout = min(args.timeout or ctx.timeout, ctx.timeout)
    headers = dict(args.headers or {})
    shown = mask_url(url)
    kwargs: dict[str, Any] = {"headers": headers}
    if "json_body" in args.model_fields_set:
        kwargs["json"] = args.json_body
    elif args.body is not None:
        kwargs["content"] = args.body.encode()
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
