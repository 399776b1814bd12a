"""The mark in a warm template's command line (``warm`` puts it there), by which `noetl ctl status`
finds a worker's templates and counts their memory in the worker's, and the name of a template's
spare child. Imports nothing: ctl status must stay quick."""

MARK = "noetl-warm-template"
# The process name (``ps``, psutil's ``name()``) of a template's spare child: forked ahead of the
# next command and waiting for it, it runs nothing (a command's process has the template's name).
SPARE_NAME = "noetl-spare"


def is_template(cmdline: list[str]) -> bool:
    """Whether a process's command line is a warm template's."""
    return MARK in cmdline


def is_spare(name: str) -> bool:
    """Whether a process's name is a template's spare child's."""
    return name == SPARE_NAME
