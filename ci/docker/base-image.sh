#!/usr/bin/env bash
# Build the local stand-in for python:3.12-slim for one architecture and print its tag.
#
#   ci/docker/base-image.sh amd64   -> python:3.12-slim (unless a real one is there) and
#                                      noetl-ci/python:3.12-slim-amd64
#   ci/docker/base-image.sh arm64   -> noetl-ci/python:3.12-slim-arm64 (needs ci/docker/binfmt.sh)
#
# The debootstrap root filesystem is cached as a tarball in $NOETL_CI_CACHE, so only the first run
# on a machine pays for it (~30 s amd64, ~70 s arm64 under qemu).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/docker/lib.sh
. "$here/lib.sh"

arch=${1:-amd64}
case "$arch" in
    amd64 | arm64) ;;
    *) die "usage: $0 amd64|arm64" ;;
esac
suite=bookworm
standin_tag="noetl-ci/python:3.12-slim-$arch"
tarball="$NOETL_CI_CACHE/$suite-python3-$arch.tar"

docker info >/dev/null 2>&1 || die "no Docker engine answers; run ci/docker/engine.sh start first"

make_rootfs() {
    need_root
    apt_install debootstrap
    [ "$arch" = amd64 ] || "$here/binfmt.sh"
    mkdir -p "$NOETL_CI_CACHE"
    local rootfs
    rootfs=$(mktemp -d "$NOETL_CI_CACHE/rootfs-$arch.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrap $suite ($arch) from $(debian_mirror)"
    debootstrap --variant=minbase --arch="$arch" --include=python3,python3-venv,ca-certificates \
        "$suite" "$rootfs" "$(debian_mirror)" >"$NOETL_CI_CACHE/debootstrap-$arch.log" 2>&1 \
        || { tail -n 20 "$NOETL_CI_CACHE/debootstrap-$arch.log" >&2; die "debootstrap failed"; }
    # Where python:3.12-slim has its interpreter.
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
}

if ! docker image inspect "$standin_tag" >/dev/null 2>&1; then
    [ -s "$tarball" ] || make_rootfs
    context=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$context'" EXIT
    ln "$tarball" "$context/rootfs.tar" 2>/dev/null || cp "$tarball" "$context/rootfs.tar"
    cp /etc/ssl/certs/ca-certificates.crt "$context/"
    cp "$here/base/Dockerfile" "$context/"
    log "building $standin_tag"
    DOCKER_BUILDKIT=0 docker build -q --platform "linux/$arch" -t "$standin_tag" "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
fi

if [ "$arch" = amd64 ]; then
    # docker/Dockerfile builds FROM python:3.12-slim unchanged; a real image of that name is kept.
    current=missing
    if docker image inspect python:3.12-slim >/dev/null 2>&1; then
        current=$(docker image inspect -f '{{index .Config.Labels "org.noetl.ci.stand-in"}}' python:3.12-slim \
            2>/dev/null || true)
    fi
    if [ "$current" = missing ] || [ "$current" = "python:3.12-slim" ]; then
        docker tag "$standin_tag" python:3.12-slim
    else
        log "a real python:3.12-slim exists here; leaving it alone"
    fi
fi
printf '%s\n' "$standin_tag"
