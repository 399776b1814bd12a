"""The ground the server, the worker and the client stand on: the words they share (statuses, event
types), the strict JSON types of the API, and the NATS notice contract. Nothing here does I/O."""
