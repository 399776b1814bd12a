"""``lazy_module(name)``: a module that is imported at its first use instead of at the import line.

For modules that a program needs for some requests only and that cost its start-up: the server
imports the playbook engine (Jinja2's sandbox, YAML, the engine's modules: ~50 ms of CPU and
~2 MiB) when it first registers or runs a playbook, not before it can answer.
The module is the real one once loaded (``importlib.util.LazyLoader``); an import error surfaces
at that first use. Declare the real import under ``TYPE_CHECKING`` beside it for the type checker.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, loaded when one of its attributes is first read (at once if already imported)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)  # imports the parent package, which must be cheap
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
