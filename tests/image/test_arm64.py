"""An arm64 image builds from the same Dockerfile under qemu and runs `noetl --version`.

The base is the arm64 stand-in (ci/docker/base-image.sh arm64), passed as BASE_IMAGE: the engine
holds one image per name, and the amd64 stand-in already answers to python:3.12-slim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl import __version__
from tests.image.engine import build, docker, ensure_base, unavailable

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def arm64_image(docker_engine: None, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = ensure_base("arm64")
    if docker("run", "--rm", "--platform", "linux/arm64", base, "true", check=False).returncode != 0:
        unavailable("arm64 binaries do not run here: qemu binfmt is not enabled (bash ci/docker/binfmt.sh)")
    tag = f"local/noetl:test-{run_id}-arm64"
    output = build(tag, tmp_path_factory.mktemp("arm64"), "--platform", "linux/arm64", "--base-image", base)
    assert f"built {tag}" in output
    yield tag
    docker("rmi", tag, check=False)


def test_the_image_is_arm64(arm64_image: str) -> None:
    inspected = json.loads(docker("image", "inspect", arm64_image, "-f", "{{json .}}").stdout)
    assert inspected["Architecture"] == "arm64"
    assert inspected["Config"]["Cmd"] == ["noetl", "run"]


def test_it_runs_noetl_version_under_emulation(arm64_image: str) -> None:
    done = docker(
        "run", "--rm", "--platform", "linux/arm64", arm64_image, "sh", "-c", "uname -m; noetl --version"
    )
    assert done.stdout.split() == ["aarch64", "noetl", __version__], done.stdout


def test_its_dependencies_import_on_arm64(arm64_image: str, tmp_path: Path) -> None:
    # The compiled wheels (asyncpg, psutil, pydantic-core, pyyaml) are the arm64 builds.
    probe = "import asyncpg, psutil, pydantic_core, yaml, fastapi, nats, supervisor; print('ok')"
    done = docker("run", "--rm", "--platform", "linux/arm64", arm64_image, "python", "-c", probe, timeout=300)
    assert done.stdout.strip().endswith("ok"), done.stdout
