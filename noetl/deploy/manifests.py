"""ci/manifests/*.yaml -> one YAML stream for `kubectl apply -f -`, with the image set. Pure.

The manifests name the noetl image ``local/noetl:dev``; deploy puts the tag of the last build in
every container named ``noetl`` instead, so the files never need editing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from noetl.errors import ConfigError

NAMESPACE = "noetl"
CONTAINER = "noetl"
PLACEHOLDER_IMAGE = "local/noetl:dev"
# The Deployments whose rollouts deploy waits for.
ROLLOUTS = ("noetl-server", "noetl-worker")

Manifest = dict[str, Any]


def load(directory: Path) -> list[Manifest]:
    """Every document of every *.yaml file in ``directory``, files in name order."""
    import yaml

    if not directory.is_dir():
        raise ConfigError(
            f"no manifests at {directory}: run from the noetl checkout (or pass --manifests DIR)"
        )
    docs: list[Manifest] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        docs.extend(doc for doc in loaded if doc)
    if not docs:
        raise ConfigError(f"no manifests in {directory} (expected *.yaml files)")
    return docs


def pod_spec(doc: Manifest) -> dict[str, Any] | None:
    """The pod spec of a workload (Deployment, StatefulSet, ...), or None."""
    spec = (doc.get("spec") or {}).get("template", {}).get("spec")
    return spec if isinstance(spec, dict) else None


def noetl_containers(doc: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    return [c for c in containers if c.get("name") == CONTAINER]


def with_image(docs: Iterable[Manifest], image: str) -> list[Manifest]:
    """A copy of ``docs`` where every container named ``noetl`` runs ``image``."""
    result = copy.deepcopy(list(docs))
    for doc in result:
        for container in noetl_containers(doc):
            container["image"] = image
    return result


def dump(docs: Iterable[Manifest]) -> str:
    import yaml

    return yaml.safe_dump_all(list(docs), sort_keys=False)


def render(directory: Path, image: str) -> str:
    """The manifests of ``directory`` with ``image``, as one YAML stream."""
    return dump(with_image(load(directory), image))
