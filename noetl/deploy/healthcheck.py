"""The image's HEALTHCHECK: `python -m noetl.deploy.healthcheck` exits 0 when healthy, 1 when not.

Healthy means: supervisord reports every process RUNNING (what `noetl ctl status` checks) and, for
the roles with the API server (all, server), ``GET /api/health`` on this container's port answers
200. A worker-only container has no API, so only its processes count. Kubernetes ignores
HEALTHCHECK and uses the manifests' probes, which run this same check for the workers.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TextIO

from noetl.errors import NoetlError
from noetl.settings import Settings, load_settings

TIMEOUT = 4.0


def health_url(settings: Settings) -> str:
    """Where this container's API answers: a wildcard listen address is reached on loopback."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/api/health"


def check_api(settings: Settings) -> str | None:
    """None when /api/health answers 200, else why not."""
    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            if response.status == 200:
                return None
            return f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} does not answer ({getattr(exc, 'reason', exc)})"


def check_processes(settings: Settings) -> str | None:
    """None when supervisord reports every process RUNNING, else which are not."""
    from noetl.supervisor.control import Control
    from noetl.supervisor.paths import RunPaths

    try:
        infos = Control(RunPaths(settings.run_dir), timeout=TIMEOUT).processes()
    except NoetlError as exc:
        return str(exc)
    down = [f"{info['name']} {info.get('statename')}" for info in infos if info.get("statename") != "RUNNING"]
    if not infos:
        return "no processes"
    return ", ".join(down) or None


def main(environ: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    try:
        settings = load_settings(environ)
    except NoetlError as exc:
        print(f"unhealthy: {exc}", file=out)
        return 1
    problem = check_processes(settings)
    if problem is None and settings.role != "worker":
        problem = check_api(settings)
    if problem:
        print(f"unhealthy: {problem}", file=out)
        return 1
    print("healthy", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
