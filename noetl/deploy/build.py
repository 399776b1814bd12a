"""Build the noetl image from docker/Dockerfile: `noetl build` and `make build`.

buildx when the docker CLI has it (``docker buildx build --load``), otherwise the classic builder
(``DOCKER_BUILDKIT=0 docker build``), both with ``--platform`` when one is asked for. The tag
(``local/noetl:<UTC timestamp>`` unless given) is written to ``.noetl_last_build_tag.txt``, where
`noetl k8s deploy` finds it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from noetl import __version__
from noetl.deploy.engine import Engine, ImageInfo, ImageStore
from noetl.deploy.errors import DeployError
from noetl.deploy.runner import Runner
from noetl.deploy.tools import Which, require
from noetl.errors import ConfigError

PLATFORMS = ("linux/amd64", "linux/arm64")
REPOSITORY = "local/noetl"
DOCKERFILE = Path("docker/Dockerfile")
TAG_FILE = Path(".noetl_last_build_tag.txt")

# [registry/]name[/name...][:tag] as docker parses it: a first part is a registry only when it has
# a dot or a port or is localhost; names are lower-case.
_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::[0-9]+)?|[a-zA-Z0-9-]+:[0-9]+|localhost)/"
_TAG_RE = re.compile(rf"^(?:{_REGISTRY})?{_NAME}(?:/{_NAME})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?$")


@dataclass(frozen=True)
class BuildOptions:
    """What to build; paths are relative to the current directory unless absolute."""

    context: Path = Path(".")
    dockerfile: Path | None = None  # default: <context>/docker/Dockerfile
    platform: str | None = None  # default: the engine's own
    no_cache: bool = False
    tag: str | None = None  # default: local/noetl:<UTC timestamp>
    base_image: str | None = None  # default: the Dockerfile's (python:3.12-slim)
    tag_file: Path | None = None  # default: <context>/.noetl_last_build_tag.txt
    build_args: dict[str, str] = field(default_factory=dict)

    def dockerfile_path(self) -> Path:
        return self.dockerfile if self.dockerfile is not None else self.context / DOCKERFILE

    def tag_file_path(self) -> Path:
        return self.tag_file if self.tag_file is not None else self.context / TAG_FILE


@dataclass(frozen=True)
class Built:
    tag: str
    builder: str  # "buildx" or "classic"
    image: ImageInfo | None


def check_platform(platform: str | None) -> str | None:
    if platform is None or platform == "":
        return None
    if platform not in PLATFORMS:
        raise ConfigError(f"PLATFORM={platform!r} is not supported: use one of {', '.join(PLATFORMS)}")
    return platform


def check_tag(tag: str) -> str:
    if len(tag) > 255 or not _TAG_RE.match(tag):
        raise ConfigError(
            f"TAG={tag!r} is not a valid image reference: use lower-case name[:tag], e.g. local/noetl:dev"
        )
    return tag


def default_tag(now: dt.datetime) -> str:
    """``local/noetl:<UTC timestamp>``, e.g. local/noetl:20250101-120000."""
    return f"{REPOSITORY}:{now.astimezone(dt.UTC).strftime('%Y%m%d-%H%M%S')}"


def build_command(opts: BuildOptions, tag: str, buildx: bool) -> tuple[list[str], dict[str, str]]:
    """The docker command line for ``opts`` and the variables to set for it. Pure."""
    if buildx:
        argv = ["docker", "buildx", "build", "--load"]
        env: dict[str, str] = {}
    else:
        argv = ["docker", "build"]
        # Without buildx the CLI must use the classic builder, even where DOCKER_BUILDKIT=1 is set.
        env = {"DOCKER_BUILDKIT": "0"}
    if opts.platform:
        argv += ["--platform", opts.platform]
    if opts.no_cache:
        argv.append("--no-cache")
    argv += ["--file", str(opts.dockerfile_path()), "--tag", tag]
    args = dict(opts.build_args)
    if opts.base_image:
        args["BASE_IMAGE"] = opts.base_image
    for name in sorted(args):
        argv += ["--build-arg", f"{name}={args[name]}"]
    argv.append(str(opts.context))
    return argv, env


def has_buildx(run: Runner) -> bool:
    return run(["docker", "buildx", "version"], capture=True, check=False).returncode == 0


def git_revision(context: Path, run: Runner, which: Which = shutil.which) -> str:
    """The commit being built, or "unknown" outside a git checkout."""
    if not which("git"):
        return "unknown"
    done = run(["git", "-C", str(context), "rev-parse", "HEAD"], capture=True, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def write_last_tag(path: Path, tag: str) -> None:
    path.write_text(tag + "\n", encoding="utf-8")


def read_last_tag(path: Path) -> str:
    """The tag of the last build, or ``ConfigError`` saying to build first."""
    try:
        tag = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"no image built yet ({path} is missing): run `make build` first") from None
    if not tag:
        raise ConfigError(f"{path} is empty: run `make build` first")
    return check_tag(tag)


def build_image(
    opts: BuildOptions,
    run: Runner,
    engine: ImageStore | None = None,
    which: Which = shutil.which,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Built:
    """Build the image, record its tag in the tag file and return what was built."""
    check_platform(opts.platform)
    tag = check_tag(opts.tag) if opts.tag else default_tag(now())
    require("docker", which)
    dockerfile = opts.dockerfile_path()
    if not dockerfile.is_file():
        raise ConfigError(
            f"no Dockerfile at {dockerfile}: run from the noetl checkout (or pass --context/--file)"
        )
    engine = engine or Engine()
    engine.ping()
    buildx = has_buildx(run)
    args = {"VERSION": __version__, "REVISION": git_revision(opts.context, run, which)}
    args.update(opts.build_args)
    opts = dataclasses.replace(opts, build_args=args)
    argv, env = build_command(opts, tag, buildx)
    run(argv, env=env)
    image = engine.image(tag)
    if image is None:
        raise DeployError(f"docker reported success but has no image {tag}")
    write_last_tag(opts.tag_file_path(), tag)
    return Built(tag=tag, builder="buildx" if buildx else "classic", image=image)
