"""NoETL runtime: API server, JetStream workers and their supervisord-based launcher."""

__version__ = "0.1.0"
