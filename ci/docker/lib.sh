# shellcheck shell=bash
# Shared paths and helpers for the ci/docker scripts (sourced, not run).
# Everything lives in stable directories so a re-run on the same machine reuses the work;
# each script also works from nothing on a fresh machine.

NOETL_CI_STATE=${NOETL_CI_STATE:-/var/lib/noetl-ci}     # dockerd's data root (images survive re-runs)
NOETL_CI_RUN=${NOETL_CI_RUN:-/run/noetl-ci}             # dockerd's exec root, PID file and log
NOETL_CI_CACHE=${NOETL_CI_CACHE:-/var/cache/noetl-ci}   # debootstrap root filesystem tarballs

log() { printf 'ci/docker: %s\n' "$*" >&2; }
die() { printf 'ci/docker: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts dockerd)"
}

# The Debian mirror apt already uses, so debootstrap needs no other network access.
debian_mirror() {
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -n1)
    if [ -z "$uri" ]; then
        uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1)
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

apt_install() {
    # Install only what is missing; `apt-get update` only when something is.
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
