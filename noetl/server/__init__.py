"""The NoETL API server: `python -m noetl.server`."""
