"""``ApiClient``: the few API calls the CLI makes, with errors turned into ``NoetlError``s.

Every failure ends as one line for people (``noetl.client.session`` says which status means what):
the server is unreachable or not ready (``ServerUnreachable``, exit 4), the request was refused as
invalid or the token is wrong (``ApiRejected``/``AuthRejected``, exit 2), or the server said no
(``ApiRejected``, exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from noetl.client.session import Endpoint, ServerUnreachable
from noetl.protocol.words import EXECUTION_FINISHED
from noetl.retry import Backoff
from noetl.settings import Settings

# While waiting, a server or database that blinks is tolerated for this long.
WAIT_OUTAGE_TOLERANCE = 30.0
# How often ``wait`` asks: soon at first (most commands are quick), then every second.
POLL = Backoff(first=0.1, cap=1.0, factor=1.5)


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = Endpoint(base_url, token, "API token")
        self._http = httpx.Client(**self.endpoint.client_options(), transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        from noetl.tokens import client_token

        return cls(settings.server_url, client_token(settings))

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

    def executions(
        self, status: str | None = None, limit: int = 20, offset: int = 0, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of executions, newest first; its ``next`` is the ``cursor`` of the following page."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._call("GET", "/api/executions", params=params)
        return result

    def register(self, content: str) -> dict[str, Any]:
        """POST /api/catalog/register; {"path", "version", "catalog_id", "message", ...}."""
        result: dict[str, Any] = self._call(
            "POST", "/api/catalog/register", json={"content": content, "resource_type": "Playbook"}
        )
        return result

    def catalog(self) -> list[dict[str, Any]]:
        """The latest version of each registered playbook (every page of them)."""
        entries: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body = {"after": after} if after is not None else {}
            result: dict[str, Any] = self._call("POST", "/api/catalog/list", json=body)
            entries.extend(result["entries"])
            after = result.get("next")
            if not after:
                return entries

    def catalog_entry(self, path: str, version: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"path": path}
        if version is not None:
            body["version"] = version
        result: dict[str, Any] = self._call("POST", "/api/catalog/resource", json=body)
        return result

    def execute(self, path: str, payload: dict[str, Any], version: int | None = None) -> str:
        """POST /api/execute; the new execution's id."""
        body: dict[str, Any] = {"path": path, "payload": payload}
        if version is not None:
            body["version"] = version
        result: dict[str, Any] = self._call("POST", "/api/execute", json=body)
        return str(result["execution_id"])

    def events(self, execution_id: str, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        result: dict[str, Any] = self._call(
            "GET", f"/api/executions/{execution_id}/events", params={"after": after, "limit": limit}
        )
        return list(result["items"])

    def cancel(self, execution_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        result: dict[str, Any] = self._call("POST", f"/api/executions/{execution_id}/cancel", json=body)
        return result

    def wait(
        self,
        execution_id: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Poll the execution until it is COMPLETED, FAILED or CANCELLED; return it."""
        outage_since: float | None = None
        delays = POLL.delays()
        while True:
            try:
                execution = self.execution(execution_id)
                outage_since = None
                if execution["status"] in EXECUTION_FINISHED:
                    return execution
            except ServerUnreachable:
                now = clock()
                outage_since = outage_since if outage_since is not None else now
                if now - outage_since > WAIT_OUTAGE_TOLERANCE:
                    raise
            sleep(next(delays))

    # --- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.endpoint.unreachable(exc) from None
        return self.endpoint.read(response).body
