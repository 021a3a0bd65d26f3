#!/usr/bin/env bash
# A private Docker engine for the tests and for `make run`, on its own socket and data root.
#
#   deploy/engine.sh start [ENGINE]    install if missing, start, wait, import the test image
#   deploy/engine.sh stop [ENGINE]     stop the engine this script started
#   deploy/engine.sh status [ENGINE]   exit 0 when the engine answers
#   deploy/engine.sh host [ENGINE]     print its DOCKER_HOST
#
# ENGINE is 20.10 (default: Debian 12's docker.io, API 1.41) or 26.1 (Debian 13's docker.io,
# API 1.45: its package is fetched with apt-get download through a private apt state folder,
# unpacked with dpkg -x, and its dockerd runs with Debian 12's containerd and runc).
# DOCKVOL_ENGINE_DIR (default /tmp/dockvol-engine-ENGINE) holds the socket, data root, exec root,
# pid file and log. The engine runs without a bridge, iptables or masquerading: containers get
# network `none`. It gives containers 2 s to stop when it shuts down (the faults tier restarts it).
set -euo pipefail

ENGINE=${2:-${DOCKVOL_ENGINE:-20.10}}
case "$ENGINE" in
    20.10 | 26.1) ;;
    *) echo "engine: unknown engine '$ENGINE' (20.10 or 26.1)" >&2; exit 2 ;;
esac
DIR=${DOCKVOL_ENGINE_DIR:-/tmp/dockvol-engine-$ENGINE}
SOCK=$DIR/docker.sock
HOST=unix://$SOCK
PIDFILE=$DIR/dockerd.pid
STOPPING=$DIR/stopping  # holds the pid of a `stop` under way
IMAGE=${DOCKVOL_TEST_IMAGE:-busybox:stable}

say() { echo "engine: $*" >&2; }
# shellcheck source=deploy/debian.sh
. "$(dirname "$0")/debian.sh"

answers() { [ -S "$SOCK" ] && docker -H "$HOST" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }

# A `stop` of this engine under way (it may still answer until its signal lands).
stopping() { [ -f "$STOPPING" ] && kill -0 "$(cat "$STOPPING")" 2>/dev/null; }

# The processes of this engine: its dockerd, and the containerd and shims that it started under
# its exec root (they outlive dockerd for a moment when it stops).
ours() { pgrep -f -- "dockerd --host $HOST |$DIR/exec/containerd/containerd" || true; }

import_image() {
    docker -H "$HOST" image inspect "$IMAGE" >/dev/null 2>&1 && return 0
    say "importing $IMAGE from Debian's busybox-static"
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/data"
    cp /bin/busybox "$root/bin/busybox"
    for cmd in $(/bin/busybox --list); do
        [ "$cmd" = busybox ] || ln -s busybox "$root/bin/$cmd"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | docker -H "$HOST" import --change 'CMD ["sh"]' - "$IMAGE" >/dev/null
    rm -rf "$root"
}

# An engine of ours that is still shutting down (a previous run's): wait for it, its containerd and
# its shims to go first; a new dockerd started meanwhile cannot reach a containerd of its own and
# waited 60 s for it. Say so at once when they do not go.
wait_for_stopping() {
    if ! stopping && { [ -z "$(ours)" ] || answers; }; then
        return 0
    fi
    say "engine $ENGINE is still stopping (pids $(ours | tr '\n' ' ')); waiting for it to finish"
    for _ in $(seq 1 120); do
        if ! stopping && { [ -z "$(ours)" ] || answers; }; then  # gone (or it was starting, and is up)
            return 0
        fi
        sleep 0.5
    done
    say "engine $ENGINE did not stop within 60 s (pids $(ours | tr '\n' ' ')); see $DIR/dockerd.log"
    exit 1
}

start() {
    ensure_packages dockerd=docker.io docker=docker.io busybox-static || exit 1
    mkdir -p "$DIR"
    wait_for_stopping
    if answers; then
        say "already running at $HOST"
    else
        local dockerd=dockerd
        [ "$ENGINE" = 26.1 ] && dockerd=$(unpack_trixie_dockerd "$DIR")
        say "starting engine $ENGINE at $HOST"
        PATH=$(dirname "$dockerd"):$PATH setsid "$dockerd" --host "$HOST" --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" \
            --bridge=none --iptables=false --ip-masq=false --shutdown-timeout 2 >"$DIR/dockerd.log" 2>&1 </dev/null &
        local started=$!
        for _ in $(seq 1 600); do
            answers && break
            if ! kill -0 "$started" 2>/dev/null; then
                say "dockerd exited at once; its log:"
                tail -n 30 "$DIR/dockerd.log" >&2
                exit 1
            fi
            sleep 0.1
        done
        if ! answers; then
            say "dockerd did not answer within 60 s; its log:"
            tail -n 30 "$DIR/dockerd.log" >&2
            exit 1
        fi
    fi
    import_image
    say "ready: engine $(docker -H "$HOST" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})') at $HOST"
}

stop() {
    local pid
    echo "$$" >"$STOPPING"
    trap 'rm -f "$STOPPING"' EXIT
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
    else  # a dockerd of ours whose pid file went: found by its socket
        pid=$(pgrep -f -- "dockerd --host $HOST " | head -n 1 || true)
        [ -n "$pid" ] || { say "not running"; return 0; }
    fi
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # its containerd and shims go after it: wait for them too, so that a start can follow at once
    for _ in $(seq 1 100); do
        [ -n "$(ours)" ] || break
        sleep 0.1
    done
    rm -f "$PIDFILE"
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) ! stopping && answers ;;
    host) echo "$HOST" ;;
    *) echo "usage: $0 start|stop|status|host" >&2; exit 2 ;;
esac
