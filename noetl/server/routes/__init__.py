"""One router per resource, and ``add_routes``: how an app takes them in."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """Put each router's routes into ``app``'s own router, in order.

    Not ``include_router``: FastAPI builds an included router's routes a second time, for the
    inclusion, at the first request (~60 ms of CPU for the API's, which the workers' registration
    waited for at every start). A router here only gives its routes their prefix and tags, and it
    does so when each route is declared.
    """
    for router in routers:
        app.router.routes.extend(router.routes)
