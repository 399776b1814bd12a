#!/usr/bin/env bash
# Let this x86_64 machine run arm64 binaries (qemu user emulation), for `docker build --platform linux/arm64`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/docker/lib.sh
. "$here/lib.sh"

if [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    exit 0
fi
need_root
apt_install qemu-user-static binfmt-support
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --enable
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "qemu-aarch64 is not enabled in binfmt_misc; see update-binfmts --display qemu-aarch64"
log "qemu-aarch64 binfmt handler enabled"
