"""The http tool: ``url`` with optional ``method``, ``headers``, ``params`` (the query string),
``json`` or ``body``, ``timeout_seconds``. NoETL's spellings are accepted too: ``endpoint`` for
``url``, ``payload`` for ``json``, ``timeout`` for ``timeout_seconds``.

Result: ``{"status_code", "headers", "data", "body"}``: ``data`` is the answer parsed as JSON when it
says it is JSON, else its text (cut at ``OUTPUT_LIMIT`` bytes with a marker), and ``body`` the same.
A status of 400 or more is a failure carrying the same fields as its output; so are connection
errors and timeouts.

Edges: redirects are followed here (at most ``MAX_REDIRECTS``), and once one leaves the origin
(scheme, host, port) every header the command gave is dropped, not only Authorization and Cookie;
a compressed body is decompressed in bounded steps, so a small gzip bomb is cut at ``BODY_LIMIT``
without ever being inflated whole; query strings (where tokens often travel) are masked in errors
and in httpx's log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import zlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
# Encodings decoded here, step by step; asked for unless the command sets Accept-Encoding itself.
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_QUERY = re.compile(r"(https?://[^\s?#'\"]*)\?[^\s#'\"]*")


def mask_query(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``***`` (and passwords masked)."""
    return _QUERY.sub(r"\1?***", mask_url(text) if "://" in text else text)


class _MaskQueries(logging.Filter):
    """httpx logs each request's full URL at INFO: its query string must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_query(record.getMessage()), None
        return True


_MASK_QUERIES = _MaskQueries()


def _method(value: str) -> str:
    method = value.upper()
    if method not in METHODS:
        raise ValueError("must be one of " + ", ".join(METHODS))
    return method


Url = Annotated[Text, Field(min_length=1, max_length=8192, pattern=r"^https?://[^\s/?#]+")]
Scalar = Text | int | float | bool


def _params(value: Any) -> Any:
    """Checked whole, so that a mistake reads as one line rather than one per branch of the union."""
    if not isinstance(value, dict):
        return value  # the model's own message
    for key, item in value.items():
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(one, str | int | float) for one in items):
            raise ValueError(f"{key!r} must be a string, a number, a boolean or a list of them")
    return value


class Args(Strict):
    """What an http command accepts; the server validates requests and the worker runs them with it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["http"]
    endpoint: Url | None = None  # NoETL's name for `url`
    url: Url | None = Field(None, validate_default=True)
    method: Annotated[str, AfterValidator(_method)] = "GET"
    headers: dict[Text, Text] | None = None
    # The query string; a list value repeats the key.
    params: Annotated[dict[Text, Scalar | list[Scalar]], BeforeValidator(_params)] | None = None
    json_body: JsonValue = Field(default=None, alias="json")
    payload: JsonValue = None  # NoETL's name for `json`
    body: Text | None = None
    # Never longer than the command's own timeout; `timeout` is the older spelling.
    timeout_seconds: Seconds | None = None
    timeout: Seconds | None = None

    @field_validator("url", mode="after")
    @classmethod
    def _one_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # `endpoint` is declared first, so it is known here (absent when it was invalid).
        if (value is None) == (info.data.get("endpoint") is None) and "endpoint" in info.data:
            raise ValueError("give `url` (or NoETL's `endpoint`), one of them")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> Args:
        given = self.model_fields_set
        bodies = [name for name in ("json_body", "payload") if name in given] + (
            ["body"] if self.body is not None else []
        )
        if len(bodies) > 1:
            raise ValueError("give `json`, `payload` or `body`, only one of them")
        if self.timeout_seconds is not None and self.timeout is not None:
            raise ValueError("give `timeout_seconds` or `timeout`, not both")
        return self

    @property
    def target(self) -> str:
        url = self.url or self.endpoint
        assert url is not None  # the model requires one of them
        return url


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``noetl submit http`` flags."""
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET", help="one of " + ", ".join(METHODS))
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="header (repeat)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="query parameter (repeat)"
    )
    parser.add_argument("--json", dest="json_body", metavar="JSON", help="JSON request body")


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ``tool`` object that ``noetl submit http`` sends."""
    tool: dict[str, Any] = {"kind": KIND, "url": args.url, "method": args.method.upper()}
    if args.header:
        tool["headers"] = {k: v.strip() for k, v in parse_pairs(args.header, "--header", ":")}
    if args.param:
        tool["params"] = dict(parse_pairs(args.param, "--param"))
    if args.json_body is not None:
        try:
            tool["json"] = json.loads(args.json_body)
        except ValueError as exc:
            raise ConfigError(f"--json is not valid JSON: {exc}") from None
    return tool


def describe(tool: Mapping[str, Any]) -> str:
    """One line for `noetl status`."""
    url = tool.get("url") or tool.get("endpoint") or ""
    return f"http: {tool.get('method', 'GET')} {mask_query(str(url))}"


def _body(content: bytes, content_type: str, more: bool) -> Any:
    if "json" in content_type.lower() and not more:
        try:
            return json.loads(content)
        except ValueError:
            pass  # said JSON, is not: show it as text
    kept = content[:OUTPUT_LIMIT]
    cut = len(content) - len(kept)
    return Captured(kept.decode("utf-8", errors="replace"), cut).shown() + ("\n[and more]" if more else "")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for ``encoding``, None for identity; ToolError for what is not decoded."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name not in ENCODINGS:
        raise ToolError(f"the answer is encoded as {encoding!r}; the http tool decodes gzip and deflate only")
    return zlib.decompressobj(ENCODINGS[name])


async def _read(response: Any) -> tuple[bytes, bool]:
    """At most ``BODY_LIMIT`` bytes of the (decoded) body, and whether there was more.

    The raw bytes are decompressed with a cap on each step's output, so a bomb stops at the limit
    instead of being inflated whole in memory first.
    """
    decoder = _decoder(response.headers.get("content-encoding", ""))
    content = bytearray()
    try:
        async for raw in response.aiter_raw():
            pending = raw
            while pending:
                if decoder is None:
                    out, pending = pending, b""
                else:
                    out = decoder.decompress(pending, BODY_LIMIT + 1 - len(content))
                    pending = decoder.unconsumed_tail
                content += out
                if len(content) > BODY_LIMIT:
                    return bytes(content[:BODY_LIMIT]), True
    except zlib.error as exc:
        raise ToolError(f"the answer's body does not decompress: {exc}") from None
    return bytes(content), False


def _follow(method: str, status: int, kwargs: dict[str, Any]) -> str:
    """The method of the request a redirect asks for; the body goes with it only for 307/308."""
    if status in (307, 308):
        return method
    for body in ("json", "content"):
        kwargs.pop(body, None)
    return method if method == "HEAD" else "GET"


async def run(args: Args, ctx: ToolContext) -> Outcome:
    """Send the request; ``completed`` with the response when its status is below 400, else ``failed``."""
    import httpx  # here, not at the top: `noetl --help` lists this kind's flags and must stay fast

    logging.getLogger("httpx").addFilter(_MASK_QUERIES)  # a set: adding it again changes nothing
    url, method = args.target, args.method
    timeout = min(args.timeout_seconds or args.timeout or ctx.timeout, ctx.timeout)
    headers = dict(args.headers or {})
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers["Accept-Encoding"] = ", ".join(ENCODINGS)
    shown = mask_query(url)
    kwargs: dict[str, Any] = {"headers": headers}
    if args.params:
        kwargs["params"] = args.params
    if "json_body" in args.model_fields_set:
        kwargs["json"] = args.json_body
    elif "payload" in args.model_fields_set:
        kwargs["json"] = args.payload
    elif args.body is not None:
        kwargs["content"] = args.body.encode()
    origin = _origin(url)
    try:
        # httpx's timeout bounds each step (connect, each read); asyncio.timeout bounds the whole.
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                async with client.stream(method, url, **kwargs) as response:
                    location = response.headers.get("location")
                    if response.status_code not in REDIRECTS or not location:
                        content, more = await _read(response)
                        break
                url = urljoin(str(response.url), location)
                # The query string given travels only to the first URL; a redirect names its own.
                kwargs.pop("params", None)
                method = _follow(method, response.status_code, kwargs)
                if _origin(url) != origin:
                    # Another origin gets none of what was meant for the first: no header at all.
                    kwargs["headers"] = {}
            else:
                raise ToolError(f"more than {MAX_REDIRECTS} redirects")
    except (httpx.TimeoutException, TimeoutError):
        raise ToolError(f"{method} {shown}: no answer within {timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ToolError(f"{method} {shown}: {type(exc).__name__}: {mask_query(str(exc))}") from None
    except ToolError as exc:
        raise ToolError(f"{method} {shown}: {exc}") from None
    data = _body(content, response.headers.get("content-type", ""), more)
    fields = {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "data": data,
        "body": data,
    }
    if response.status_code >= 400:
        error = f"{method} {shown} answered {response.status_code} {response.reason_phrase}".rstrip()
        return Outcome(ok=False, error=error, output=fields)
    return Outcome(ok=True, result=fields)
