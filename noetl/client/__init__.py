"""Clients of the NoETL API: the CLI's (``api``) and what it shares with the worker's (``session``).

Both import httpx: import them lazily.
"""

from noetl.client.api import ApiClient
from noetl.client.session import ApiRejected, AuthRejected, ServerUnreachable

__all__ = ["ApiClient", "ApiRejected", "AuthRejected", "ServerUnreachable"]
