"""The mark in a warm template's command line (``warm`` puts it there), by which `noetl ctl status`
finds a worker's templates and counts their memory in the worker's. Imports nothing: ctl status
must stay quick."""

MARK = "noetl-warm-template"


def is_template(cmdline: list[str]) -> bool:
    """Whether a process's command line is a warm template's."""
    return MARK in cmdline
