"""A real Docker engine for the image tests: use the one that answers, or start one with
ci/docker/engine.sh (and stop it afterwards by its PID); skip, or fail under NOETL_REQUIRE_DOCKER=1
(`make test-image`, CI), when none can be had."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CI_DOCKER = REPO / "ci" / "docker"
ARM64_BASE = "noetl-ci/python:3.12-slim-arm64"
# One image build from an empty cache, plus the test around it. Measured here: 263 s for arm64
# under qemu with the machine's load at 6 on 2 cores, which the suite's 300 s default missed.
BUILD_TIMEOUT = 1200


def docker(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; stdout and stderr together in ``stdout``."""
    done = subprocess.run(
        ["docker", *args],
        text=True,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} failed ({done.returncode}):\n{done.stdout[-3000:]}"
        )
    return done


def answers() -> bool:
    try:
        return docker("info", check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail when the engine is required (CI)."""
    if os.environ.get("NOETL_REQUIRE_DOCKER") == "1":
        pytest.fail(f"NOETL_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


def script(name: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CI_DOCKER / name), *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )


def ensure_engine() -> bool:
    """True when this call started the engine (the caller stops it)."""
    if answers():
        return False
    if os.geteuid() != 0:
        unavailable("no Docker engine answers and only root can start one (bash ci/docker/engine.sh start)")
    done = script("engine.sh", "start", timeout=300)
    if done.returncode != 0 or not answers():
        unavailable(f"no Docker engine could be started: {done.stdout.strip()[-500:]}")
    return True


def stop_engine() -> None:
    script("engine.sh", "stop", timeout=60)


def ensure_base(arch: str) -> str:
    """The stand-in base image for ``arch`` (built by ci/docker/base-image.sh unless present)."""
    done = script("base-image.sh", arch)
    if done.returncode != 0:
        unavailable(f"no {arch} base image could be made: {done.stdout.strip()[-800:]}")
    return done.stdout.strip().splitlines()[-1]


def build(tag: str, tmp: Path, *flags: str, context: Path = REPO) -> str:
    """Build with `noetl build` (the CLI behind `make build`); returns its output."""
    noetl = Path(sys.executable).with_name("noetl")
    argv: Sequence[str] = [
        str(noetl),
        "build",
        "--context",
        str(context),
        "--tag",
        tag,
        "--tag-file",
        str(tmp / "tag.txt"),
        *flags,
    ]
    done = subprocess.run(
        argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"noetl build failed:\n{done.stdout[-4000:]}"
    assert (tmp / "tag.txt").read_text().strip() == tag
    return done.stdout
