"""What every client of the NoETL API shares: base URL, bearer token, what each answer means, retries.

The CLI's ``noetl.client.api.ApiClient`` (synchronous, one try per call) and the worker's
``noetl.worker.api.ServerApi`` (asynchronous, retried until a deadline) are thin layers over this
module, so a status means the same to both:

- 2xx, and the statuses a caller lists as answers (the worker's 404 and 409), are answers;
- 401/403 raise ``AuthRejected`` (exit 2): the token is wrong, and trying again cannot help;
- any other 4xx raises ``ApiRejected`` carrying the server's one-line detail (exit 2 when the
  request itself is invalid, 1 otherwise);
- no connection, a timeout or a 5xx (503 while the database is down) raise ``ServerUnreachable``
  (exit 4): the server being briefly away is normal (restarts, deploys), so waiting callers retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from noetl.client.wire import NoAnswer, WireClient
from noetl.errors import EXIT_CONFIG, ConfigError, NoetlError, ServerUnavailableError
from noetl.retry import Backoff, retry
from noetl.throttle import Throttle

REQUEST_TIMEOUT = 10.0  # seconds one request may take
# Between retries of one call: 0.1 s doubling up to 2 s.
CALL_BACKOFF = Backoff(first=0.1, cap=2.0)
# The request itself is wrong (malformed, too large, invalid): the user's mistake, not the server's.
INVALID_REQUEST = frozenset({400, 413, 422})
# The server's "no" to something that exists or is held elsewhere: an answer, said as it is.
NOT_FOUND_OR_CONFLICT = frozenset({404, 409})


class ServerUnreachable(ServerUnavailableError):
    """No useful answer: the connection failed or timed out, or the server answered 5xx."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message  # short, for "retrying" log lines


class ApiRejected(NoetlError):
    """The server refused the request with a 4xx other than 401/403 (``detail`` says why)."""

    def __init__(self, status: int, detail: str) -> None:
        if status in NOT_FOUND_OR_CONFLICT or not 400 <= status < 500:
            message = detail  # "no execution ...": the server's line says it all
        else:
            message = f"the server refused the request: {detail}"
        super().__init__(message)
        self.status = status
        self.detail = detail
        if status in INVALID_REQUEST:
            self.exit_code = EXIT_CONFIG


class AuthRejected(ConfigError):
    """401/403: the client's NOETL_API_TOKEN does not match the server's."""


class Reply(Protocol):
    """What is read of an HTTP answer: an ``httpx.Response`` (the CLI's) or a ``wire.Response``."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON body, None when there is none


class Endpoint:
    """Where the API is, the token to send, and how to name that token to the user."""

    def __init__(
        self, base_url: str, token: str | None, token_name: str, token_env: str = "NOETL_API_TOKEN"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.token_name = token_name  # "API token" (the CLI's), "worker's token"
        self.token_env = token_env  # where the user sets it

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client``: base URL, token, timeout."""
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": self.headers,
            "timeout": REQUEST_TIMEOUT,
        }
        if self.base_url.startswith("http://"):
            # No TLS to an http:// server: without this, httpx builds the default TLS context
            # (certifi's bundle) anyway, ~20 ms of CPU at every CLI command's start.
            options["verify"] = False
        return options

    def unreachable(self, exc: Exception) -> ServerUnreachable:
        """The error for a request that got no answer at all."""
        if isinstance(exc, NoAnswer):
            reason = str(exc)  # already says what happened
        else:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ServerUnreachable(
            f"cannot reach the NoETL server at {self.base_url} ({reason}): "
            "start it (`noetl run`) or set NOETL_SERVER_URL",
            reason,
        )

    def read(self, response: Reply, answers: Collection[int] = ()) -> Answer:
        """The answer, or the error its status means (see the module's docstring)."""
        status = response.status_code
        if status < 300 or status in answers:
            try:
                return Answer(status, response.json() if response.content else None)
            except ValueError:
                return Answer(status, None)
        detail = _detail(response)
        if status in (401, 403):
            raise AuthRejected(
                f"the server refused the {self.token_name} ({status}): {detail}; "
                f"set {self.token_env} to the token the server was started with"
            )
        if status < 500:
            raise ApiRejected(status, detail)
        message = f"the server at {self.base_url} answered {status}: {detail}"
        raise ServerUnreachable(message, f"{status} {detail}")


def _detail(response: Reply) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, Mapping) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(body)[:200]


class AsyncSession:
    """Asynchronous calls retried until a deadline, over ``noetl.client.wire`` (a tenth of httpx's
    CPU per request). ``until`` arguments are ``clock()`` times (``time.monotonic()`` by default);
    ``None`` retries until the caller is cancelled."""

    def __init__(
        self,
        endpoint: Endpoint,
        log: logging.Logger,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._http = WireClient(endpoint.base_url, endpoint.headers)
        self._sleep = sleep
        self._clock = clock
        self._warn = Throttle(log, clock=clock)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self, method: str, path: str, body: Any = None, *, until: float | None, answers: Collection[int] = ()
    ) -> Answer:
        """One call, retried while the server is unreachable until ``until``."""

        async def attempt() -> Answer:
            timeout = REQUEST_TIMEOUT
            if until is not None:  # one slow request must not overrun the deadline either
                timeout = max(0.05, min(timeout, until - self._clock()))
            try:
                response = await self._http.request(method, path, json=body, timeout=timeout)
            except NoAnswer as exc:
                raise self.endpoint.unreachable(exc) from None
            return self.endpoint.read(response, answers)

        def not_answering(exc: ServerUnreachable) -> None:
            self._warn(f"server {self.endpoint.base_url} not answering ({exc.reason}); retrying")

        return await retry(
            attempt,
            errors=(ServerUnreachable,),
            backoff=CALL_BACKOFF,
            on_error=not_answering,
            until=until,
            clock=self._clock,
            sleep=self._sleep,
        )
