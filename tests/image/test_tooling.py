"""Lint of the Dockerfile, and the Makefile targets calling the one implementation in the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image.engine import REPO

pytestmark = pytest.mark.image


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    done = subprocess.run(
        [hadolint, str(REPO / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def make_dry_run(*args: str) -> str:
    done = subprocess.run(
        ["make", "-n", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build"], "noetl build"),
        (
            ["build", "PLATFORM=linux/arm64", "NO_CACHE=1", "TAG=local/noetl:x"],
            "noetl build --platform linux/arm64 --no-cache --tag local/noetl:x",
        ),
        (["kind-create"], "noetl k8s --cluster noetl kind-create"),
        (["k8s-deploy"], "noetl k8s --cluster noetl deploy"),
        (
            ["k8s-redeploy", "PLATFORM=linux/amd64"],
            "noetl k8s --cluster noetl redeploy --platform linux/amd64",
        ),
        (["k8s-remove"], "noetl k8s --cluster noetl remove"),
        (["k8s-reset"], "noetl k8s --cluster noetl reset"),
    ],
)
def test_make_targets_run_the_cli(args: list[str], expected: str) -> None:
    lines = [" ".join(line.split()) for line in make_dry_run(*args).splitlines()]
    assert any(line.endswith(expected) for line in lines), lines
