"""Image build and cluster helpers behind `noetl build` and `noetl k8s` (and the Makefile targets,
which call those commands: one implementation).

- ``tools``: the external programs and Python packages they need, with one-line errors.
- ``runner``: the only place that spawns them (injected, so tests can record instead).
- ``build``: `docker build` / `docker buildx build` of docker/Dockerfile, the last-tag file.
- ``manifests``: ci/manifests/*.yaml -> one YAML stream with the image set (pure).
- ``k8s``: kind cluster, load, apply, rollout wait, remove, reset.
- ``healthcheck``: the image's HEALTHCHECK.
"""
