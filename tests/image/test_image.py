"""The image itself: built from docker/Dockerfile unchanged, what it declares, its layers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from noetl import __version__
from tests.image.engine import REPO, build, docker

pytestmark = pytest.mark.image


def config(image: str) -> dict[str, Any]:
    return dict(json.loads(docker("image", "inspect", image, "-f", "{{json .Config}}").stdout))


def test_declares_what_the_cluster_relies_on(image: str) -> None:
    cfg = config(image)
    assert cfg["Cmd"] == ["noetl", "run"]
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["User"] == "10001:10001"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "python", "-m", "noetl.deploy.healthcheck"]
    env = dict(item.split("=", 1) for item in cfg["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["NOETL_HOME"] == "/var/lib/noetl/home"
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])


def test_runs_as_a_non_root_user_with_a_writable_home(image: str) -> None:
    done = docker(
        "run", "--rm", image, "sh", "-c", 'id -u; id -g; noetl --version; touch "$NOETL_HOME/x" && echo ok'
    )
    assert done.stdout.split("\n")[:4] == ["10001", "10001", f"noetl {__version__}", "ok"], done.stdout


def test_ships_no_build_stage_leftovers(image: str) -> None:
    done = docker(
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "for p in /src /dist /opt/build /tmp/dist; do test -e $p && echo $p; done; true",
    )
    assert done.stdout.strip() == ""


def _is_layer(created_by: str, size: int) -> bool:
    """Whether a history entry made a filesystem layer (RUN, COPY, ADD) rather than metadata."""
    return size > 0 or "#(nop)" not in created_by or bool(re.search(r"#\(nop\)\s+(COPY|ADD)\b", created_by))


def layers(image: str) -> list[tuple[str, int, str]]:
    """(layer digest, size in bytes, instruction) of every filesystem layer, oldest first."""
    digests = json.loads(docker("image", "inspect", image, "-f", "{{json .RootFS.Layers}}").stdout)
    history = docker(
        "history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image
    ).stdout.splitlines()
    entries = [(int(size), created) for size, created in (line.split("\t", 1) for line in reversed(history))]
    made = [(size, created) for size, created in entries if _is_layer(created, size)]
    assert len(made) == len(digests), (made, digests)
    return [(digest, size, created) for digest, (size, created) in zip(digests, made, strict=True)]


def test_a_code_only_change_reuses_the_dependency_layer(image: str, tmp_path: Path) -> None:
    # What .dockerignore lets into the context, with one line of code changed.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(REPO / name, context / name)
    for name in ("noetl", "conf", "docker"):
        shutil.copytree(REPO / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    init = context / "noetl" / "__init__.py"
    init.write_text(init.read_text() + "\n# a code-only change\n")
    changed = f"{image}-code-change"
    build(changed, tmp_path, context=context)
    try:
        before, after = layers(image), layers(changed)
        shared = 0
        while shared < min(len(before), len(after)) and before[shared][0] == after[shared][0]:
            shared += 1
        rebuilt = after[shared:]
        assert rebuilt, "the changed code must be in a new layer"
        # The venv with the dependencies (the biggest layer the Dockerfile adds) comes from the
        # cache; what the change rebuilt is only noetl's own wheel.
        venv = next(layer for layer in before if "/opt/venv" in layer[2] or "COPY dir:" in layer[2])
        assert venv in before[:shared], (venv, rebuilt)
        assert venv[1] > 20_000_000
        assert sum(size for _, size, _ in rebuilt) < 5_000_000, rebuilt
    finally:
        docker("rmi", changed, check=False)
