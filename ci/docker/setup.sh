#!/usr/bin/env bash
# Everything the image tests need on a fresh CI machine (Debian 12, root), idempotent and fast on
# a re-run: a Docker engine, the python:3.12-slim stand-in (amd64) and, unless NOETL_CI_ARM64=0,
# qemu binfmt and the arm64 stand-in. Then `make test-image` (which runs this first) or
# `pytest -m image tests/image`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/docker/lib.sh
. "$here/lib.sh"

start=$(date +%s)
"$here/engine.sh" start
"$here/base-image.sh" amd64 >/dev/null
if [ "${NOETL_CI_ARM64:-1}" != 0 ]; then
    "$here/binfmt.sh"
    "$here/base-image.sh" arm64 >/dev/null
fi
log "ready in $(($(date +%s) - start)) s: $(docker version --format 'engine {{.Server.Version}}')"
