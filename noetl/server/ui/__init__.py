"""The web UI (``NOETL_ENABLE_UI``): server-rendered pages, one small script, live updates by
server-sent events; every asset ships in this package (docs/ui.md).

``install(app, services)`` puts the UI in front of the API app: ``/`` and ``/ui/...`` go to the UI's
own app, every other path to the API exactly as before.
"""

from __future__ import annotations

from fastapi import FastAPI

from noetl.server.services import Services


def install(app: FastAPI, services: Services) -> None:
    """Serve the UI from ``app`` (call it after the API's own middleware, so it runs first)."""
    from noetl.server.ui.app import build_ui
    from noetl.server.ui.gate import UiGate

    app.add_middleware(UiGate, ui=build_ui(services))
