"""The ground the server, the worker and the client stand on: the words they share (statuses, event
types), the strict JSON types of the API, the NATS notice contract, and the snapshot of the
supervised programs `noetl run`'s event listener writes for the server. Nothing here does I/O."""
