#!/usr/bin/env bash
# A Docker Swarm on this one machine for the fleet tests: N nodes, each a dockerd in its own network,
# mount and UTS namespaces, all on one bridge of the host. Needs root.
#
#   tests/fleet/lab.sh up ENGINE [N]           N nodes (default 3): node 1 the manager, the others
#                                              workers, busybox:stable (one image id) on each; prints
#                                              "NODE ADDRESS DOCKER_HOST", one line per node
#   tests/fleet/lab.sh nodes ENGINE            print those lines again
#   tests/fleet/lab.sh down ENGINE             stop and remove all of the lab, even a half-made one
#   tests/fleet/lab.sh exec ENGINE NODE CMD..  run CMD in NODE's namespaces (`docker` there is NODE's)
#   tests/fleet/lab.sh stop-node ENGINE NODE [--kill]
#                                              stop NODE's dockerd (SIGTERM, as a clean shutdown;
#                                              --kill: SIGKILL it, its containerd and its containers)
#   tests/fleet/lab.sh start-node ENGINE NODE  start it again on the same data
#
# ENGINE is 20.10 or 26.1 (deploy/engine.sh's); NODE is 2, n2 or lab26-n2. Both labs can be up at
# once: lab20-nN on bridge lab20br, 10.213.1.0/24; lab26-nN on lab26br, 10.213.2.0/24; the host is .1,
# node N is .(10+N). LAB_HEARTBEAT (default 5s) is Swarm's dispatcher heartbeat. Swarm's limits on
# this kernel, and what tests should know: tests/fleet/README.md.
set -euo pipefail

CMD=${1:-}
ENGINE=${2:-}
usage() {
    echo "usage: $0 up ENGINE [N] | nodes|down ENGINE | exec ENGINE NODE CMD... |" \
        "stop-node ENGINE NODE [--kill] | start-node ENGINE NODE   (ENGINE: 20.10 or 26.1)" >&2
    exit 2
}
case "$ENGINE" in
    20.10) TAG=lab20 NET=10.213.1 ;;
    26.1) TAG=lab26 NET=10.213.2 ;;
    *) usage ;;
esac
# Another lab beside the tests' (make bench's): LAB_TAG (at most 8 letters) and LAB_NET (a /24's first three octets).
TAG=${LAB_TAG:-$TAG} NET=${LAB_NET:-$NET}
DIR=/tmp/dockvol-lab-$ENGINE${LAB_TAG:+-$LAB_TAG}
BR=${TAG}br
IMAGE=busybox:stable
PKG26=/tmp/dockvol-engine-26.1/pkg  # where deploy/engine.sh unpacks Debian 13's dockerd
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

say() { echo "lab: $*" >&2; }
# shellcheck source=deploy/debian.sh disable=SC1091  # checked with deploy/*.sh
. "$ROOT/deploy/debian.sh"

size() { cat "$DIR/size" 2>/dev/null || echo 0; }
name() { echo "$TAG-n$1"; }
addr() { echo "$NET.$((10 + $1))"; }
host() { echo "unix://$DIR/n$1/docker.sock"; }
dk() { local i=$1; shift; docker -H "$(host "$i")" "$@"; }
answers() { dk "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
all_answer() { local i; for i in $(seq 1 "$(size)"); do answers "$i" || return 1; done; }
# The pid of the sleep that holds node I's mount and UTS namespaces (fails when it is gone).
holder() { local p; p=$(cat "$DIR/n$1/holder.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }
index() {  # NODE (2, n2 or lab26-n2): its number
    local n=${1##*n}
    [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$(size)" ] && echo "$n" && return
    say "lab $ENGINE has no node '$1'" && exit 2
}
wait_until() {  # SECONDS WHAT CMD...: poll CMD every 0.2 s
    local secs=$1 what=$2
    shift 2
    for _ in $(seq 1 $((secs * 5))); do "$@" && return 0; sleep 0.2; done
    say "gave up after ${secs}s waiting for $what"
    return 1
}
print_nodes() { local i; for i in $(seq 1 "$(size)"); do echo "$(name "$i") $(addr "$i") $(host "$i")"; done; }

# Put the engine's binaries first in PATH; with --install, install or unpack what is missing.
use_engine() {
    if [ "${1:-}" = --install ]; then
        ensure_packages dockerd=docker.io docker=docker.io busybox-static || exit 1
    fi
    [ "$ENGINE" = 26.1 ] || return 0
    local pkg=$PKG26
    if [ ! -x "$pkg/usr/sbin/dockerd" ]; then
        pkg=/tmp/dockvol-lab-pkg-26.1/pkg  # our own copy, which `down` keeps
        if [ ! -x "$pkg/usr/sbin/dockerd" ] && [ "${1:-}" = --install ]; then
            unpack_trixie_dockerd "${pkg%/pkg}" >/dev/null
        fi
    fi
    [ -x "$pkg/usr/sbin/dockerd" ] || { say "no dockerd 26.1 (run: $0 up 26.1)"; exit 1; }
    PATH=$pkg/usr/sbin:$pkg/usr/bin:$PATH
}

# Node I: a network namespace on the bridge, and mount and UTS namespaces held by a sleep. These
# have a fresh sysfs (of this network namespace) with the host's cgroup mounts moved back into it,
# their own /run (so their own /var/run/docker.sock), hostname and resolv.conf.
make_node() {
    local i=$1 ns d veth
    ns=$(name "$i") d=$DIR/n$1 veth=${TAG}n$1
    mkdir -p "$d"
    if [ "$ENGINE" = 20.10 ]; then  # its engine id comes from this key, /etc/docker/key.json by default
        echo "{\"deprecated-key-path\": \"$d/key.json\"}" >"$d/daemon.json"
    else
        echo '{}' >"$d/daemon.json"
    fi
    echo "nameserver 127.0.0.1" >"$d/resolv.conf"  # the node's own, where nothing answers: fails fast
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$BR" up
    ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # shellcheck disable=SC2016  # $1 and $2 are the inner shell's
    setsid nsenter --net="/run/netns/$ns" unshare --mount --uts --propagation slave sh -c '
        set -e
        mkdir -p "$1/cgroup"
        mount --rbind /sys/fs/cgroup "$1/cgroup"
        mount -t sysfs sysfs /sys
        mount --move "$1/cgroup" /sys/fs/cgroup
        umount -l /run/netns 2>/dev/null || true  # no hold here on other nodes network namespaces
        mount -t tmpfs -o mode=755 tmpfs /run
        mount --bind "$1/resolv.conf" /etc/resolv.conf
        hostname "$2"
        echo $$ >"$1/holder.pid"
        exec sleep infinity' sh "$d" "$ns" >"$d/holder.log" 2>&1 </dev/null &
    wait_until 10 "node $i's namespaces" holder "$i" >/dev/null || { cat "$d/holder.log" >&2; return 1; }
}

start_dockerd() {
    local i=$1 d=$DIR/n$1 pid
    pid=$(holder "$i") || { say "node $i has lost its namespaces; run: $0 down $ENGINE"; return 1; }
    rm -f "$d/dockerd.pid"
    nsenter -t "$pid" -m -u -n -- setsid dockerd --host unix:///var/run/docker.sock --host "$(host "$i")" \
        --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" --config-file "$d/daemon.json" \
        --cgroup-parent "/$(name "$i")" --bridge=none --iptables=false --ip-masq=false --shutdown-timeout 2 \
        >>"$d/dockerd.log" 2>&1 </dev/null &
}

wait_dockerd() {
    wait_until 60 "node $1's dockerd" answers "$1" || { tail -n 20 "$DIR/n$1/dockerd.log" >&2; return 1; }
}

# Every process of node I: those in its network namespace (its sleep, dockerd, containerd, shims)
# and those in its cgroups (its containers).
node_pids() {
    local ns
    ns=$(name "$1")
    {
        ip netns pids "$ns" 2>/dev/null || true
        find /sys/fs/cgroup -maxdepth 4 -path "*/$ns/*" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    } | sort -un
}
engine_pids() { node_pids "$1" | grep -vx "$(holder "$1" || echo none)" || true; }
no_engine_pids() { [ -z "$(engine_pids "$1")" ]; }

signal_dockerd() {  # I: SIGTERM node I's dockerd(s)
    local p
    for p in $(engine_pids "$1"); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dockerd ]; then kill -TERM "$p" 2>/dev/null || true; fi
    done
}
# I: wait for node I's engine to stop after signal_dockerd, else kill what is left of it.
reap_engine() {
    wait_until 20 "node $1's engine to stop" no_engine_pids "$1" || engine_pids "$1" | xargs -r kill -9 2>/dev/null || true
    wait_until 5 "node $1's engine to go" no_engine_pids "$1" || true
    rm -f "$DIR/n$1/dockerd.pid"
}

make_image() {  # as deploy/engine.sh import_image, on node 1, then copied so every node has its id
    local n=$1 root i
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/data"
    cp /bin/busybox "$root/bin/busybox"
    for cmd in $(/bin/busybox --list); do [ "$cmd" = busybox ] || ln -s busybox "$root/bin/$cmd"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | dk 1 import --change 'CMD ["sh"]' - "$IMAGE" >/dev/null
    rm -rf "$root"
    for i in $(seq 2 "$n"); do dk 1 save "$IMAGE" | dk "$i" load -q >/dev/null; done
}

ready_nodes() { [ "$(dk 1 node ls --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active$')" = "$1" ]; }

up() {
    local n=${1:-3} i token
    [[ $n =~ ^[1-9][0-9]?$ ]] || usage
    use_engine --install
    if [ -e "$DIR" ] || ip link show "$BR" >/dev/null 2>&1; then
        if [ -f "$DIR/ready" ] && all_answer; then say "lab $ENGINE is already up"; print_nodes; return 0; fi
        say "lab $ENGINE is half up (a node stopped? see start-node) or left over; or clean it: $0 down $ENGINE"
        exit 1
    fi
    iptables -S FORWARD 2>/dev/null | grep -q '^-P FORWARD DROP' && say "warning: FORWARD policy DROP may drop bridged traffic"
    trap 'say "up failed; logs in $DIR/n*/; clean up with: $0 down $ENGINE"' EXIT
    mkdir -p "$DIR"
    echo "$n" >"$DIR/size"
    ip link add "$BR" type bridge
    ip addr add "$NET.1/24" dev "$BR"
    ip link set "$BR" up
    for i in $(seq 1 "$n"); do make_node "$i"; start_dockerd "$i"; done
    for i in $(seq 1 "$n"); do wait_dockerd "$i"; done
    dk 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" \
        --dispatcher-heartbeat "${LAB_HEARTBEAT:-5s}" >/dev/null
    token=$(dk 1 swarm join-token -q worker)
    for i in $(seq 2 "$n"); do
        dk "$i" swarm join --token "$token" --advertise-addr "$(addr "$i")" --listen-addr "$(addr "$i"):2377" \
            "$(addr 1):2377" >/dev/null
    done
    make_image "$n"
    wait_until 60 "$n nodes Ready" ready_nodes "$n"
    trap - EXIT
    touch "$DIR/ready"
    say "lab $ENGINE is up: $n nodes, engine $(dk 1 version --format '{{.Server.Version}}')"
    print_nodes
}

# Every node of the lab that left a trace: a network namespace, a veth, a state dir or cgroups.
traces() {
    {
        ip netns list | awk '{print $1}'
        ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1
        ls "$DIR" 2>/dev/null || true
        find /sys/fs/cgroup -maxdepth 2 -type d -name "$TAG-n*" -printf '%f\n'
    } | sed -nE "s/^($TAG-n|${TAG}n|n)([0-9]+)$/\2/p" | sort -un
}

kill_node() { [ -z "$(node_pids "$1")" ] || { node_pids "$1" | xargs -r kill -9 2>/dev/null; return 1; }; }

down() {  # no clean shutdown: everything of each node is killed, its mounts go with its namespace
    local nodes i ns dir
    nodes=$(traces)
    for i in $nodes; do wait_until 10 "node $i's processes to go" kill_node "$i" || true; done
    for i in $nodes; do
        ns=$(name "$i")
        ip netns del "$ns" 2>/dev/null || true
        ip link del "${TAG}n$i" 2>/dev/null || true
        for dir in /sys/fs/cgroup/"$ns" /sys/fs/cgroup/*/"$ns"; do
            [ ! -d "$dir" ] || wait_until 5 "cgroup $dir to empty" find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
    ip link del "$BR" 2>/dev/null || true
    awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
    rm -rf "$DIR"
    say "lab $ENGINE is down"
}

case "$CMD" in
    up) up "${3:-3}" ;;
    nodes) if [ -f "$DIR/ready" ]; then print_nodes; else say "lab $ENGINE is not up"; exit 1; fi ;;
    down) down ;;
    exec)
        [ $# -ge 4 ] || usage
        i=$(index "$3")
        use_engine
        pid=$(holder "$i") || { say "node $i has lost its namespaces"; exit 1; }
        shift 3
        exec nsenter -t "$pid" -m -u -n -- "$@"
        ;;
    stop-node)
        [ $# -ge 3 ] || usage
        i=$(index "$3")
        if [ "${4:-}" = --kill ]; then engine_pids "$i" | xargs -r kill -9 2>/dev/null || true; else signal_dockerd "$i"; fi
        reap_engine "$i"
        say "node $(name "$i")'s engine is stopped"
        ;;
    start-node)
        [ $# -ge 3 ] || usage
        i=$(index "$3")
        use_engine
        answers "$i" && { say "node $(name "$i")'s engine is already running"; exit 0; }
        no_engine_pids "$i" || { say "node $(name "$i")'s engine is still stopping"; exit 1; }
        # A killed containerd may linger as a zombie (nothing reaps it here) under the pid in this
        # file, and dockerd would wait for that "running" containerd instead of starting its own.
        rm -f "$DIR/n$i/exec/containerd/containerd.pid"
        start_dockerd "$i"
        wait_dockerd "$i"
        say "node $(name "$i")'s engine is running"
        ;;
    *) usage ;;
esac
