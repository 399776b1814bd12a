"""The template ships inside the wheel: build it, install it into a fresh venv, render."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# The UI's login page, script and stylesheet from the installed app, in-process.
SERVE_UI = """
import asyncio, httpx
from noetl.server.app import create_app
from noetl.settings import load_settings
settings = {"POSTGRES_HOST": "db", "NOETL_ENABLE_UI": "true", "NOETL_API_TOKEN": "t" * 20}
app = create_app(load_settings(settings))
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        pages = [await c.get(p) for p in ("/ui/login", "/ui/static/ui.js", "/ui/static/ui.css")]
    print(*[p.status_code for p in pages], "EventSource" in pages[1].text)
asyncio.run(main())
"""


def test_installed_wheel_renders_the_config(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("noetl-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # Run from a directory with no checkout in sight, so only the installed template can be found.
    env = {
        "PATH": f"{env_dir / 'bin'}:{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "POSTGRES_HOST": "db",
        "NATS_URL": "nats://nats:4222",
        "NOETL_WORKERS": "3",
    }
    done = subprocess.run(
        [str(env_dir / "bin" / "noetl"), "config", "render"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "[program:server]" in done.stdout and "numprocs=3" in done.stdout
    location = subprocess.run(
        [str(python), "-c", "import noetl.supervisor.render as r, noetl; print(noetl.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in location.stdout  # the installed package, not the checkout

    # The web UI's templates and assets are in the wheel: the installed app serves both.
    ui = subprocess.run(
        [str(python), "-c", SERVE_UI], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert ui.stdout.split() == ["200", "200", "200", "True"], ui.stdout + ui.stderr

    # Installed without the `embedded` extra and given no POSTGRES_HOST: one line, exit 2, nothing started.
    env.pop("POSTGRES_HOST")
    home = tmp_path / "noetl-home"
    run = subprocess.run(
        [str(env_dir / "bin" / "noetl"), "run"],
        cwd=tmp_path,
        env={**env, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith(
        "noetl: POSTGRES_HOST is not set and the embedded PostgreSQL is not installed"
    )
    assert "pip install 'noetl[embedded]'" in run.stderr
    assert not home.exists()
    # `config render` shows what run would write: here nothing, for the same reason, in the same line.
    render = subprocess.run(
        [str(env_dir / "bin" / "noetl"), "config", "render"],
        cwd=tmp_path,
        env={**env, "NOETL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (render.returncode, render.stdout, render.stderr) == (2, "", run.stderr)
    assert not home.exists()
