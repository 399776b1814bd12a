"""supervisord started before its config is written: `noetl run` spawns it first thing.

supervisord's own imports take ~0.1 s of CPU; started after the launcher had checked the settings
and written the config, they came one after the other on the path to ready. Started first, they
run on the other core while the launcher works. Its arguments are supervisord's (``-c CONFIG``, the
path the config will be written to: tools that look for supervisord find it by that name). The
launcher then writes one JSON object to this process's stdin, ``{"env": {...}}``: the environment
every program inherits (the generated password and tokens among them: a pipe, never a file), and
this process becomes supervisord (``prompt.main``). Its stdin closed with nothing written means that
the launcher stopped before starting anything (it says why): this process exits 0 without a word.

Run as ``python -m noetl.supervisor.early -c CONFIG`` by ``parent.Supervisord.start`` only.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> None:
    # Ctrl-C reaches the whole foreground group: until supervisord runs, only the launcher acts on
    # it (when it dies, the kernel ends this process: PR_SET_PDEATHSIG).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    from noetl.supervisor import prompt  # supervisor's modules: the slow part, while the launcher works

    handed = sys.stdin.buffer.read()
    if not handed:
        return
    message = json.loads(handed)
    os.environ.clear()
    os.environ.update(message["env"])  # what supervisord's programs inherit
    signal.signal(signal.SIGINT, previous)
    prompt.main(sys.argv[1:])


if __name__ == "__main__":
    main()
