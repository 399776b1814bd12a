"""The NoETL worker: `python -m noetl.worker` claims commands announced on NATS and runs them."""
