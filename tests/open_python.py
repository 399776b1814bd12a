"""An interpreter the unprivileged NOETL_USER can run, for `noetl run` started as root in tests.

As root, `noetl run` starts the server and workers as NOETL_USER with the launcher's interpreter.
The development venv's interpreter lives under /root here (pyenv), which no other user can reach,
so tests run the launcher with Debian's /usr/bin/python3 (the same 3.11) in a venv of its own
whose site-packages load the development venv's (readable by all): no second installation.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _reachable_by_others(path: Path) -> bool:
    real = path.resolve()
    if not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def open_python() -> str:
    """``sys.executable`` when others can run it, else the shared open venv's python (made once)."""
    if os.geteuid() != 0 or _reachable_by_others(Path(sys.executable)):
        return sys.executable
    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir()) / f"noetl-open-python-{key}"
    python = base / "bin" / "python"
    if python.exists():
        return str(python)
    tmp = Path(tempfile.mkdtemp(prefix="noetl-open-python-"))
    os.chmod(tmp, 0o755)
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(tmp)], check=True, timeout=60)
    dev_site = sysconfig.get_path("purelib")
    (site,) = (tmp / "lib").glob("python3*/site-packages")
    (site / "noetl_dev_venv.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("nats-server",):
        if (scripts / name).exists():
            (tmp / "bin" / name).symlink_to(scripts / name)
    try:
        tmp.rename(base)
    except OSError:  # another session made it meanwhile
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return str(python)
