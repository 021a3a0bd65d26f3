#!/usr/bin/env bash
# A private Docker engine for the tests and for `make run`, on its own socket and data root.
#
#   deploy/engine.sh start    install (Debian's docker.io) if missing, start, wait, import the test image
#   deploy/engine.sh stop     stop the engine this script started
#   deploy/engine.sh status   exit 0 when the engine answers
#   deploy/engine.sh host     print its DOCKER_HOST
#
# DOCKVOL_ENGINE_DIR (default /tmp/dockvol-engine) holds the socket, data root, exec root, pid file and log.
# The engine runs without a bridge, iptables or masquerading: containers get network `none`.
set -euo pipefail

DIR=${DOCKVOL_ENGINE_DIR:-/tmp/dockvol-engine}
SOCK=$DIR/docker.sock
HOST=unix://$SOCK
PIDFILE=$DIR/dockerd.pid
IMAGE=${DOCKVOL_TEST_IMAGE:-busybox:stable}

say() { echo "engine: $*" >&2; }

answers() { [ -S "$SOCK" ] && docker -H "$HOST" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; }

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]} and cannot install them (needs root and apt-get)"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

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

start() {
    install_packages
    mkdir -p "$DIR"
    if answers; then
        say "already running at $HOST"
    else
        say "starting dockerd at $HOST"
        setsid dockerd --host "$HOST" --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" \
            --bridge=none --iptables=false --ip-masq=false >"$DIR/dockerd.log" 2>&1 </dev/null &
        for _ in $(seq 1 120); do
            answers && break
            sleep 0.5
        done
        if ! answers; then
            say "dockerd did not answer within 60 s; its log:"
            tail -n 30 "$DIR/dockerd.log" >&2
            exit 1
        fi
    fi
    import_image
    say "ready: DOCKER_HOST=$HOST (API $(docker -H "$HOST" version --format '{{.Server.APIVersion}}'))"
}

stop() {
    [ -f "$PIDFILE" ] || { say "not running"; return 0; }
    local pid
    pid=$(cat "$PIDFILE")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    host) echo "$HOST" ;;
    *) echo "usage: $0 start|stop|status|host" >&2; exit 2 ;;
esac
