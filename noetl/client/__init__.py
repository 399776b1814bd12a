"""Clients of the NoETL API: the CLI's (``api``, over httpx), the worker's transport (``wire``) and
what both share (``session``).

``ApiClient`` is loaded on first use: a worker imports ``noetl.client.session`` and must not pay
for httpx, which only the CLI uses.
"""

from typing import TYPE_CHECKING, Any

from noetl.client.session import ApiRejected, AuthRejected, ServerUnreachable

if TYPE_CHECKING:
    from noetl.client.api import ApiClient

__all__ = ["ApiClient", "ApiRejected", "AuthRejected", "ServerUnreachable"]


def __getattr__(name: str) -> Any:
    if name == "ApiClient":
        from noetl.client.api import ApiClient

        return ApiClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
