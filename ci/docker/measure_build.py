"""Measure the image: size, a cold build, and rebuilds after a code-only change.

    .venv/bin/python ci/docker/measure_build.py [--rebuilds 3]

Needs a Docker engine and the base image (bash ci/docker/setup.sh). Builds through `noetl build`
(what `make build` runs) from a copy of the build context, so the checkout is never touched; the
cold build uses --no-cache (the base image is local, so "cold" means every layer of the Dockerfile,
including the dependency download from PyPI). Prints the figures; removes the images it made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOETL = Path(sys.executable).with_name("noetl")


def build(context: Path, tag: str, *flags: str) -> float:
    begin = time.monotonic()
    subprocess.run(
        [
            str(NOETL),
            "build",
            "--context",
            str(context),
            "--tag",
            tag,
            "--tag-file",
            str(context / "tag.txt"),
            *flags,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - begin


def image_size(tag: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", tag, "-f", "{{json .Size}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rebuilds", type=int, default=3)
    args = parser.parse_args()
    tags: list[str] = []
    with tempfile.TemporaryDirectory(prefix="noetl-measure-") as tmp:
        context = Path(tmp)
        for name in ("pyproject.toml", "README.md", ".dockerignore"):
            shutil.copy2(REPO / name, context / name)
        for name in ("noetl", "conf", "docker"):
            shutil.copytree(REPO / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            tags.append("local/noetl:measure-cold")
            cold = build(context, tags[-1], "--no-cache")
            size = image_size(tags[-1])
            rebuilds = []
            init = context / "noetl" / "__init__.py"
            for n in range(args.rebuilds):
                init.write_text(init.read_text() + f"\n# code-only change {n}\n")
                tags.append(f"local/noetl:measure-code-{n}")
                rebuilds.append(build(context, tags[-1]))
        finally:
            subprocess.run(["docker", "rmi", *tags], check=False, capture_output=True)
    print(f"image size:                          {size / 1e6:.0f} MB ({size} bytes)")
    print(f"cold build (--no-cache):             {cold:.1f} s")
    print(
        f"rebuild after a code-only change:    median {statistics.median(rebuilds):.1f} s "
        f"of {len(rebuilds)} ({', '.join(f'{r:.1f}' for r in rebuilds)}); "
        f"{cold / statistics.median(rebuilds):.1f}x faster than cold"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
