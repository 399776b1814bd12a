"""The external programs and Python packages `noetl build` / `noetl k8s` need.

A missing one ends the command with one line saying which is missing and how to get it.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable

from noetl.deploy.errors import MissingToolError

Which = Callable[[str], str | None]

# How to get each program, in one line.
INSTALL_HINTS = {
    "docker": "install Docker Engine: https://docs.docker.com/engine/install/",
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    "git": "install git (apt-get install git)",
}

PACKAGE_HINT = "pip install 'noetl[deploy]' (or `make install`)"


def require(name: str, which: Which = shutil.which) -> str:
    """The path of program ``name``, or ``MissingToolError`` naming it and how to install it."""
    path = which(name)
    if not path:
        raise MissingToolError(f"{name} not found on PATH: {INSTALL_HINTS[name]}")
    return path


def require_all(names: tuple[str, ...], which: Which = shutil.which) -> dict[str, str]:
    """``require`` each of ``names`` in order; the first missing one is the error."""
    return {name: require(name, which) for name in names}


def require_package(module: str) -> None:
    """Fail with one line when Python package ``module`` (docker, kubernetes) is not installed."""
    spec = importlib.util.find_spec(module)
    # A namespace package (origin None) is a directory of that name, not the package.
    if spec is None or spec.origin in (None, "namespace"):
        raise MissingToolError(f"the {module} Python package is not installed: {PACKAGE_HINT}")
