"""`noetl build`: the docker command line, the tag, the tag file and the one-line errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from noetl.deploy.build import (
    BuildOptions,
    build_command,
    build_image,
    check_platform,
    check_tag,
    default_tag,
    read_last_tag,
)
from noetl.deploy.errors import MissingToolError
from noetl.errors import EXIT_CONFIG, ConfigError
from tests.unit.deploy.fakes import FakeEngine, RecordingRunner, which_only

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def checkout(tmp_path: Path) -> Path:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_classic_builder_command_with_platform_and_no_cache() -> None:
    opts = BuildOptions(context=Path("/src"), platform="linux/arm64", no_cache=True, base_image="base:1")
    argv, env = build_command(opts, "local/noetl:x", buildx=False)
    assert argv == [
        "docker",
        "build",
        "--platform",
        "linux/arm64",
        "--no-cache",
        "--file",
        "/src/docker/Dockerfile",
        "--tag",
        "local/noetl:x",
        "--build-arg",
        "BASE_IMAGE=base:1",
        "/src",
    ]
    # The classic builder even where the user's environment asks for BuildKit.
    assert env == {"DOCKER_BUILDKIT": "0"}


def test_buildx_command_loads_the_image_into_the_engine() -> None:
    argv, env = build_command(BuildOptions(context=Path("."), platform="linux/amd64"), "t:1", buildx=True)
    assert argv[:4] == ["docker", "buildx", "build", "--load"]
    assert argv[4:6] == ["--platform", "linux/amd64"]
    assert "--no-cache" not in argv
    assert env == {}


def test_no_platform_means_the_engine_default() -> None:
    argv, _ = build_command(BuildOptions(), "t:1", buildx=False)
    assert "--platform" not in argv


def test_default_tag_is_a_utc_timestamp() -> None:
    assert default_tag(NOW) == "local/noetl:20250304-050607"
    assert check_tag(default_tag(NOW))


@pytest.mark.parametrize("tag", ["local/noetl:dev", "noetl", "registry.example:5000/team/noetl:1.2.3"])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["Local/noetl:dev", "noetl:", "no tl", "noetl:-x", "a//b"])
def test_invalid_tags_are_refused_in_one_line(tag: str) -> None:
    with pytest.raises(ConfigError, match=r"TAG=.* is not a valid image reference") as info:
        check_tag(tag)
    assert "\n" not in str(info.value)


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(ConfigError, match="use one of linux/amd64, linux/arm64"):
        check_platform("linux/s390x")
    assert check_platform("") is None


def test_build_uses_buildx_when_it_exists_and_writes_the_tag_file(tmp_path: Path) -> None:
    src = checkout(tmp_path)
    run = RecordingRunner(answers={("git",): (0, "abc123\n")})
    built = build_image(
        BuildOptions(context=src),
        run,
        engine=FakeEngine({"local/noetl:20250304-050607"}),
        which=which_only("docker", "git"),
        now=lambda: NOW,
    )
    assert built.tag == "local/noetl:20250304-050607"
    assert built.builder == "buildx"
    build = run.argvs()[-1]
    assert build[:3] == ["docker", "buildx", "build"]
    assert "REVISION=abc123" in build
    assert any(arg.startswith("VERSION=") for arg in build)
    assert (src / ".noetl_last_build_tag.txt").read_text() == "local/noetl:20250304-050607\n"
    assert read_last_tag(src / ".noetl_last_build_tag.txt") == built.tag


def test_build_falls_back_to_the_classic_builder(tmp_path: Path) -> None:
    src = checkout(tmp_path)
    run = RecordingRunner(answers={("docker", "buildx"): (1, "")})
    built = build_image(
        BuildOptions(context=src, tag="local/noetl:mine", tag_file=tmp_path / "tag.txt"),
        run,
        engine=FakeEngine({"local/noetl:mine"}),
        which=which_only("docker"),
    )
    assert built.builder == "classic"
    assert run.calls[-1].argv[:2] == ["docker", "build"]
    assert run.calls[-1].env == {"DOCKER_BUILDKIT": "0"}
    assert "REVISION=unknown" in run.calls[-1].argv  # no git here
    assert (tmp_path / "tag.txt").read_text() == "local/noetl:mine\n"


def test_missing_docker_is_one_line_naming_it(tmp_path: Path) -> None:
    run = RecordingRunner()
    with pytest.raises(MissingToolError) as info:
        build_image(BuildOptions(context=checkout(tmp_path)), run, engine=FakeEngine(), which=which_only())
    assert str(info.value).startswith("docker not found on PATH: install Docker Engine")
    assert info.value.exit_code == EXIT_CONFIG
    assert run.calls == []


def test_missing_dockerfile_says_where_to_run_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Dockerfile at .*run from the noetl checkout"):
        build_image(BuildOptions(context=tmp_path), RecordingRunner(), FakeEngine(), which_only("docker"))


def test_no_tag_file_says_to_build_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no image built yet .* run `make build` first"):
        read_last_tag(tmp_path / ".noetl_last_build_tag.txt")
