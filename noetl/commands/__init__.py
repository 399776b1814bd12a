"""One module per `noetl` command; each exposes ``register(subparsers)``."""
