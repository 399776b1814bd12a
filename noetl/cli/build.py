"""`noetl build`: build the noetl image from docker/Dockerfile (what `make build` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from noetl.errors import EXIT_OK

if TYPE_CHECKING:
    from noetl.deploy.build import BuildOptions, Built

PLATFORMS = ("linux/amd64", "linux/arm64")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The image options, shared with `noetl k8s redeploy`."""
    parser.add_argument("--platform", choices=PLATFORMS, help="target platform (default: the engine's own)")
    parser.add_argument("--no-cache", action="store_true", help="build every layer anew")
    parser.add_argument("--tag", help="image tag (default: local/noetl:<UTC timestamp>)")
    parser.add_argument("--base-image", help="base image (default: the Dockerfile's, python:3.12-slim)")
    parser.add_argument("--context", type=Path, default=Path("."), help="the noetl checkout (default: .)")
    parser.add_argument("--file", type=Path, help="Dockerfile (default: <context>/docker/Dockerfile)")
    parser.add_argument(
        "--tag-file", type=Path, help="where to write the tag (default: <context>/.noetl_last_build_tag.txt)"
    )


def build_options(args: argparse.Namespace) -> BuildOptions:
    from noetl.deploy.build import BuildOptions

    return BuildOptions(
        context=args.context,
        dockerfile=args.file,
        platform=args.platform,
        no_cache=args.no_cache,
        tag=args.tag,
        base_image=args.base_image,
        tag_file=args.tag_file,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build the container image (docker buildx, or the classic builder)",
        description=(
            "Build docker/Dockerfile with `docker buildx build --load` when buildx exists, else the classic "
            "builder, and write the tag to .noetl_last_build_tag.txt for `noetl k8s deploy`. "
            "Exits 2 when docker is missing or an option is wrong, 1 when the build fails."
        ),
    )
    add_build_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.deploy.build import build_image
    from noetl.deploy.runner import SubprocessRunner

    built = build_image(build_options(args), SubprocessRunner())
    print(describe(built))
    return EXIT_OK


def describe(built: Built) -> str:
    line = f"built {built.tag} ({built.builder} builder"
    if built.image is not None:
        line += f", {built.image.architecture}, {built.image.size / 1e6:.0f} MB"
    return line + ")"
