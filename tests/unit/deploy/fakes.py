"""Small fakes for the deploy helpers: a runner that records commands, an engine with images."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from noetl.deploy.engine import ImageInfo
from noetl.deploy.errors import DeployError
from noetl.deploy.runner import Result, describe


@dataclass
class Call:
    argv: list[str]
    input: str | None
    env: dict[str, str]


@dataclass
class RecordingRunner:
    """Records every command; ``answers`` maps a command prefix to (returncode, stdout)."""

    answers: dict[tuple[str, ...], tuple[int, str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        capture: bool = False,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        self.calls.append(Call(list(argv), input, dict(env or {})))
        code, out = 0, ""
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                code, out = answer
        if check and code != 0:
            raise DeployError(f"`{describe(argv)}` failed with exit code {code}")
        return Result(code, out)

    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]


class FakeEngine:
    def __init__(self, images: set[str] | None = None) -> None:
        self.images = set(images or ())
        self.pinged = False

    def ping(self) -> None:
        self.pinged = True

    def image(self, tag: str) -> ImageInfo | None:
        if tag not in self.images:
            return None
        return ImageInfo(
            tag=tag, id="sha256:0", size=123_000_000, architecture="amd64", labels={}, user="10001"
        )


def which_only(*names: str) -> Callable[[str], str | None]:
    """A ``shutil.which`` that finds exactly ``names``."""
    return lambda name: f"/usr/bin/{name}" if name in names else None
