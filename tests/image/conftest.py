"""Fixtures of the image tests (all marked ``image``): a Docker engine, the stand-in base image,
the image built from docker/Dockerfile by `noetl build`, and backends the containers can reach."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.engine import BUILD_TIMEOUT, build, docker, ensure_base, ensure_engine, stop_engine
from tests.image.stack import Backends, backends_on_network


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The image fixtures build from nothing on a machine's first run, and pytest-timeout counts a
    # fixture's setup in the first test that uses it, whichever that is.
    for item in items:
        if item.get_closest_marker("image") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    started = ensure_engine()
    yield
    if started:
        stop_engine()


@pytest.fixture(scope="session")
def run_id() -> str:
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def image(docker_engine: None, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """local/noetl:test-<id>, built from docker/Dockerfile unchanged on the stand-in base."""
    ensure_base("amd64")
    tag = f"local/noetl:test-{run_id}"
    build(tag, tmp_path_factory.mktemp("build"))
    yield tag
    docker("rmi", tag, check=False)


@pytest.fixture(scope="session")
def backends(docker_engine: None, run_id: str) -> Iterator[Backends]:
    """A docker network and a real PostgreSQL on the host that its containers reach."""
    # Not under pytest's tmp dirs: PostgreSQL's unprivileged user must reach its directories.
    with (
        tempfile.TemporaryDirectory(prefix="noetl-image-") as tmp,
        backends_on_network(f"noetl-test-{run_id}", Path(tmp)) as found,
    ):
        yield found
