"""The local Docker engine, through the docker Python package: is it up, which images it has."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from noetl.deploy.errors import DeployError
from noetl.deploy.tools import require_package

ENGINE_HINT = "start Docker (on the CI machines: `bash ci/docker/engine.sh start`)"


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    id: str
    size: int
    architecture: str
    labels: dict[str, str]
    user: str


class ImageStore(Protocol):
    """What build and deploy need from an engine (``Engine``, or a fake in tests)."""

    def ping(self) -> None: ...

    def image(self, tag: str) -> ImageInfo | None: ...


class Engine:
    """A connection to the engine named by DOCKER_HOST (default: the local socket)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            docker = _docker()
            try:
                self._client = docker.from_env(timeout=30)
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise DeployError(
                    f"the Docker engine does not answer ({_short(exc)}): {ENGINE_HINT}"
                ) from None
        return self._client

    def ping(self) -> None:
        """Raise ``DeployError`` with one line when no engine answers."""
        self.client()

    def image(self, tag: str) -> ImageInfo | None:
        """What the engine knows about ``tag``, or None when it has no such image."""
        docker = _docker()
        try:
            image = self.client().images.get(tag)
        except docker.errors.ImageNotFound:
            return None
        attrs = image.attrs
        config = attrs.get("Config") or {}
        return ImageInfo(
            tag=tag,
            id=image.id,
            size=int(attrs.get("Size") or 0),
            architecture=str(attrs.get("Architecture") or ""),
            labels=dict(config.get("Labels") or {}),
            user=str(config.get("User") or ""),
        )


def _docker() -> Any:
    """The docker SDK, imported only when used (``import docker`` in a checkout could also name the
    repository's docker/ directory for type checkers, hence import_module)."""
    require_package("docker")
    return importlib.import_module("docker")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
