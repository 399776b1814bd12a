"""A small synchronous client of the NoETL API, for the CLI (imports httpx: import it lazily)."""

from noetl.client.api import ApiClient, ApiError

__all__ = ["ApiClient", "ApiError"]
