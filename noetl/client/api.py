"""``ApiClient``: the few API calls the CLI makes, with errors turned into ``NoetlError``s.

Every failure ends as one line for people: the server is unreachable or not ready
(``ServerUnavailableError``, exit 4), the request was refused as invalid (``ConfigError``, exit 2),
or the server said no (``ApiError``, exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from noetl.errors import ConfigError, NoetlError, ServerUnavailableError
from noetl.protocol.words import FINISHED
from noetl.settings import Settings

# While waiting, a server or database that blinks is tolerated for this long.
WAIT_OUTAGE_TOLERANCE = 30.0


class ApiError(NoetlError):
    """The server understood the request and refused it (404, 409)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        return cls(settings.server_url, settings.api_token)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- calls -------------------------------------------------------------------------------

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/executions; returns {"execution_id", "command_id"}."""
        result: dict[str, Any] = self._call("POST", "/api/executions", json=request)
        return result

    def execution(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/executions/{execution_id}")
        return result

    def executions(self, status: str | None = None, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        result: dict[str, Any] = self._call("GET", "/api/executions", params=params)
        return result

    def wait(
        self,
        execution_id: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Poll the execution until it is completed, failed or dead; return it."""
        interval = 0.1
        outage_since: float | None = None
        while True:
            try:
                execution = self.execution(execution_id)
                outage_since = None
                if execution["status"] in FINISHED:
                    return execution
            except ServerUnavailableError:
                now = clock()
                outage_since = outage_since if outage_since is not None else now
                if now - outage_since > WAIT_OUTAGE_TOLERANCE:
                    raise
            sleep(interval)
            interval = min(interval * 1.5, 1.0)

    # --- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ServerUnavailableError(
                f"cannot reach the NoETL server at {self.base_url} ({reason}): "
                "start it (`noetl run`) or set NOETL_SERVER_URL"
            ) from None
        if response.status_code < 400:
            return response.json()
        detail = _detail(response)
        status = response.status_code
        if status == 401:
            raise ConfigError(f"the server at {self.base_url} refused the API token: {detail}")
        if status in (400, 413, 422):
            raise ConfigError(f"the server refused the request: {detail}")
        if status in (404, 409):
            raise ApiError(detail, status)
        raise ServerUnavailableError(f"the server at {self.base_url} answered {status}: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return str(body)[:200]
