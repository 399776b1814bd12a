"""How supervisord starts the server and the workers: without the optional imports they never use.

Three libraries import optional integrations whenever those happen to be installed: nats-py imports
aiohttp (its transport for ws:// and wss:// URLs), httpx imports click, rich and pygments (its own
command line) and FastAPI imports ``pydantic.v1`` (all of pydantic 1: ~20 ms of CPU and ~1.5 MiB) the
first time it checks whether a route's model is a pydantic 1 model, which noetl never uses. Any of
noetl's extras or dev tools installs the first two (kubernetes needs aiohttp), and then every worker
paid ~270 ms of CPU at start and ~14 MiB of RSS for them, the server ~240 ms and ~9 MiB.
A module set to ``None`` in ``sys.modules`` fails to import as if it were not installed, which these
libraries expect (FastAPI then answers "not a pydantic 1 model"); the program then runs as
``python -m MODULE ARGS`` would run it.

Run as ``python -m noetl.supervisor.entry MODULE [ARGS...]`` (see ``programs.py``).
"""

from __future__ import annotations

import runpy
import sys

from noetl.errors import NoetlError
from noetl.settings import load_settings

# What each program never imports itself, by its module. The server keeps click: uvicorn needs it.
UNUSED = {
    "noetl.server": ("aiohttp", "pydantic.v1"),
    "noetl.worker": ("aiohttp", "click", "rich", "pygments"),
}
# NATS URLs that need nats-py's aiohttp transport.
WEBSOCKET_SCHEMES = ("ws://", "wss://")


def unused(module: str, nats_url: str) -> tuple[str, ...]:
    """The modules ``module`` can do without, given the NATS URL(s) it will connect to."""
    names = UNUSED.get(module, ())
    if any(url.strip().startswith(WEBSOCKET_SCHEMES) for url in nats_url.split(",")):
        names = tuple(name for name in names if name != "aiohttp")
    return names


def main(argv: list[str] | None = None) -> None:
    module, *args = sys.argv[1:] if argv is None else argv
    try:
        nats_url = load_settings().nats_url
    except NoetlError:
        nats_url = ""  # the program loads the settings again and reports what is wrong in them
    for name in unused(module, nats_url):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
