"""Print the runtime dependencies declared in pyproject.toml, one requirement a line, with those
of the extras named after the file (``dependencies.py pyproject.toml duckdb``).

The image installs these in a layer of their own, before any of noetl's code is copied, so a
change to the code alone reuses that layer. Run by docker/Dockerfile with the base image's Python.
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    project = tomllib.load(fh)["project"]
requirements = list(project.get("dependencies", []))
for extra in sys.argv[2:]:
    requirements += project.get("optional-dependencies", {})[extra]
for requirement in requirements:
    print(requirement)
