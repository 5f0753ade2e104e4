#!/usr/bin/env bash
# A Docker engine of the benchmarks' own, beside the one `make run` and `make test` use.
#
#   bash tests/perf/bench_engine.sh start   # prints the BERTH_DOCKER_HOST to export
#   bash tests/perf/bench_engine.sh stop    # stops it with its containers, wipes it
#
# Why: the 5,000-container reconcile benchmark holds thousands of containers for a long
# time. On an engine of its own they never show in another installation's listings, a
# libnetwork hang under mass create/remove (seen once on engine 20.10) stops only this
# engine, and `stop` can throw the whole data root away instead of waiting on thousands
# of removals. It has its own socket, pidfile, data and exec roots, its own default
# bridge (created here: a second engine must never use `--bridge none`, which deletes
# docker0) and its own address pool, apart from deploy/lib.sh's 10.213.0.0/16.
# The demo images are copied from the main engine (`docker save | docker load`).
set -euo pipefail

NAME="${BERTH_BENCH_ENGINE_NAME:-berthbench}"
ROOT="${BERTH_BENCH_ENGINE_ROOT:-/var/lib/$NAME}"
SOCK="/run/$NAME.sock"
PIDFILE="/run/$NAME.pid"
BRIDGE="${NAME:0:12}0"
BRIDGE_CIDR="${BERTH_BENCH_BRIDGE_CIDR:-10.214.255.1/24}"
POOL="${BERTH_BENCH_ADDRESS_POOL:-base=10.216.0.0/16,size=24}"
MAIN="${BERTH_MAIN_DOCKER_HOST:-unix:///var/run/docker.sock}"
IMAGES=(berth-demo/worker:1.0)

bench() { docker -H "unix://$SOCK" "$@"; }

start() {
    if bench version >/dev/null 2>&1; then
        echo "export BERTH_DOCKER_HOST=unix://$SOCK"
        return 0
    fi
    mkdir -p "$ROOT/data" "$ROOT/exec"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    PATH="$PATH:/usr/sbin:/sbin" setsid nohup dockerd -H "unix://$SOCK" --pidfile "$PIDFILE" \
        --data-root "$ROOT/data" --exec-root "$ROOT/exec" --bridge "$BRIDGE" \
        --default-address-pool "$POOL" >>"$ROOT/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        bench version >/dev/null 2>&1 && break
        sleep 0.5
    done
    bench version >/dev/null 2>&1 || {
        echo "the bench engine did not start; see $ROOT/dockerd.log" >&2
        exit 1
    }
    for image in "${IMAGES[@]}"; do
        bench image inspect "$image" >/dev/null 2>&1 ||
            docker -H "$MAIN" save "$image" | bench load -q >&2
    done
    echo "export BERTH_DOCKER_HOST=unix://$SOCK"
}

engine_pid() { cat "$PIDFILE" 2>/dev/null || true; }

stop_engine() {
    local pid shim
    pid="$(engine_pid)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # Stopping thousands of containers takes minutes: give it ten.
        for _ in $(seq 1 1200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Containers the engine did not stop in time outlive it (their shims are their
    # parents): end them, so their processes, network namespaces and veths go too.
    for shim in $(pgrep -f "containerd-shim.*$ROOT" || true); do
        pkill -KILL -P "$shim" 2>/dev/null || true
        kill -KILL "$shim" 2>/dev/null || true
    done
}

# Removing thousands of containers one by one takes longer than creating them, and
# engine 20.10's libnetwork can deadlock under mass removal (seen here: `docker network
# ls` never answered again). So the engine is stopped instead (SIGTERM stops its
# containers, also in that state), and what it leaves in the root network namespace is
# removed here: the bridges of its networks (addresses in its pool) and the iptables
# rules that name a bridge that no longer exists. Then its data root goes.
pool_prefix() { # "10.216." for base=10.216.0.0/16
    local base="${POOL#base=}"
    base="${base%%/*}"
    echo "${base%.*.*}."
}

remove_network_leftovers() {
    local prefix bridge table line name
    prefix="$(pool_prefix)"
    for bridge in $(ip -o -4 addr show | awk -v p="$prefix" 'index($4, p) == 1 {print $2}' | sort -u); do
        case "$bridge" in br-*) ip link del "$bridge" 2>/dev/null || true ;; esac
    done
    for table in filter nat; do
        iptables-save -t "$table" | grep -E '^-A .*br-[0-9a-f]{12}' | while read -r line; do
            name="$(grep -oE 'br-[0-9a-f]{12}' <<<"$line" | head -1)"
            ip link show "$name" >/dev/null 2>&1 && continue
            # shellcheck disable=SC2086  # the saved rule is a list of arguments
            eval "iptables -t $table ${line/-A/-D}" 2>/dev/null || true
        done
    done
}

stop() {
    stop_engine
    ip link del "$BRIDGE" 2>/dev/null || true
    remove_network_leftovers
    # Never delete under a live mount (a container's network namespace, a layer).
    grep -F " $ROOT/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n 1 umount -l
    rm -rf "$ROOT"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
