#!/usr/bin/env bash
# Make a Docker engine answer on the default socket, or stop the one this script started.
#
#   ci/docker/engine.sh start    install docker.io if needed, start dockerd unless one answers
#   ci/docker/engine.sh stop     stop the dockerd this script started (by the PID in its PID file)
#   ci/docker/engine.sh status   exit 0 when an engine answers
#
# dockerd keeps its images under $NOETL_CI_STATE/docker, so a re-run finds the base images and the
# build cache of the previous run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/docker/lib.sh
. "$here/lib.sh"

pidfile="$NOETL_CI_RUN/dockerd.pid"
logfile="$NOETL_CI_RUN/dockerd.log"

answers() { docker info >/dev/null 2>&1; }

start() {
    if answers; then
        log "a Docker engine already answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
        return 0
    fi
    need_root
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    command -v docker >/dev/null 2>&1 || apt_install docker.io
    mkdir -p "$NOETL_CI_STATE/docker" "$NOETL_CI_RUN/exec"
    log "starting dockerd (log: $logfile)"
    # setsid: the engine must outlive this script and not get the terminal's signals.
    setsid dockerd --data-root "$NOETL_CI_STATE/docker" --exec-root "$NOETL_CI_RUN/exec" \
        -p "$pidfile" >"$logfile" 2>&1 </dev/null &
    local _
    for _ in $(seq 1 60); do
        answers && { log "dockerd is up (pid $(cat "$pidfile"))"; return 0; }
        sleep 0.5
    done
    tail -n 20 "$logfile" >&2 || true
    die "dockerd did not answer within 30 s; see $logfile"
}

stop() {
    [ -s "$pidfile" ] || { log "no PID file at $pidfile: nothing this script started"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local _
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.5
    done
    die "dockerd (pid $pid) did not stop within 30 s"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    *) die "usage: $0 start|stop|status" ;;
esac
