# shellcheck shell=bash
# Berth: shared helpers for deploy/run.sh, deploy/test.sh and the Makefile.
#
# Source this file, do not execute it:   source deploy/lib.sh
#
# Every berth_ensure_* function is idempotent and prints nothing when there is
# nothing to do. Messages go to stderr with a "[berth]" prefix; failures call
# berth_die, which prints the reason and returns non-zero (scripts running with
# `set -e` stop there).
#
# Variables (all may be set beforehand to override):
#   BERTH_REPO       the checkout (default: the folder above deploy/)
#   BERTH_STATE_DIR  runtime state: logs, pidfiles, SQLite db (default: $BERTH_REPO/var)
#   BERTH_VENV       the virtualenv (default: $BERTH_REPO/.venv)
#   BERTH_DOCKER_SOCK the engine socket (default: /var/run/docker.sock)

BERTH_REPO="${BERTH_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
BERTH_STATE_DIR="${BERTH_STATE_DIR:-$BERTH_REPO/var}"
case "$BERTH_STATE_DIR" in
    /*) ;;
    *) BERTH_STATE_DIR="$PWD/$BERTH_STATE_DIR" ;;
esac
BERTH_VENV="${BERTH_VENV:-$BERTH_REPO/.venv}"
BERTH_DOCKER_SOCK="${BERTH_DOCKER_SOCK:-/var/run/docker.sock}"
BERTH_DOCKER_PIDFILE="${BERTH_DOCKER_PIDFILE:-/var/run/docker.pid}"
export BERTH_REPO BERTH_STATE_DIR BERTH_VENV

# The state folder holds the database, the secret key, registry and TLS keys: owner-only
# (0700) from its creation on, and tightened when an older Berth left it readable.
(umask 077 && mkdir -p "$BERTH_STATE_DIR/log" "$BERTH_STATE_DIR/run")
if [ -O "$BERTH_STATE_DIR" ]; then chmod 700 "$BERTH_STATE_DIR"; fi

# Set to 1 by berth_engine_start when this shell started the engine, 0 when an
# engine was already answering. Callers use it to decide whether to stop it.
BERTH_ENGINE_STARTED_HERE="${BERTH_ENGINE_STARTED_HERE:-0}"

berth_log() { printf '[berth] %s\n' "$*" >&2; }
berth_die() {
    printf '[berth] ERROR: %s\n' "$*" >&2
    return 1
}

# Seconds since an EPOCHREALTIME reading, with one decimal.
berth_elapsed() {
    local start="$1" now="$EPOCHREALTIME"
    awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

# ---------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------

# "check:package" pairs. A check is a command name or an absolute file path.
BERTH_PACKAGES=(
    dockerd:docker.io
    docker-compose:docker-compose
    docker-registry:docker-registry
    busybox:busybox-static
    haproxy:haproxy
    slapd:slapd
    ldapadd:ldap-utils
    /usr/include/ldap.h:libldap2-dev
    /usr/include/sasl/sasl.h:libsasl2-dev
    chromium:chromium
    ip:iproute2
    ss:iproute2
    curl:curl
    pebble:pebble
    prometheus:prometheus
)

_berth_have() {
    case "$1" in
        /*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
    esac
}

# Demo images are built FROM scratch with a copy of busybox, so it must be the
# statically linked one (package busybox-static), not Debian's dynamic busybox.
_berth_busybox_is_static() {
    local bb
    bb="$(command -v busybox 2>/dev/null)" || return 1
    ! ldd "$bb" >/dev/null 2>&1
}

berth_ensure_packages() {
    local entry check pkg missing=()
    for entry in "${BERTH_PACKAGES[@]}"; do
        check="${entry%:*}"
        pkg="${entry##*:}"
        if ! _berth_have "$check"; then
            missing+=("$pkg")
        elif [ "$check" = busybox ] && ! _berth_busybox_is_static; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    # Deduplicate while keeping order.
    local -A seen=()
    local uniq=()
    for pkg in "${missing[@]}"; do
        [ -n "${seen[$pkg]:-}" ] && continue
        seen[$pkg]=1
        uniq+=("$pkg")
    done

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || berth_die "missing Debian packages (${uniq[*]}) and not root" || return 1
        sudo=(sudo)
    fi

    berth_log "installing Debian packages: ${uniq[*]}"
    # A policy-rc.d that answers 101 keeps the packages' postinst scripts from
    # starting their daemons (dockerd, slapd, haproxy, docker-registry): Berth
    # starts the ones it needs itself, on its own terms.
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${uniq[@]}"
    } || rc=$?
    if [ "$made_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    [ "$rc" -eq 0 ] || berth_die "apt-get failed (exit $rc) installing: ${uniq[*]}" || return 1

    for entry in "${BERTH_PACKAGES[@]}"; do
        _berth_have "${entry%:*}" || berth_die "still missing after install: ${entry%:*} (package ${entry##*:})" || return 1
    done
}

# ---------------------------------------------------------------------------
# Python virtualenv
# ---------------------------------------------------------------------------

berth_ensure_venv() {
    local req="$BERTH_REPO/requirements.txt"
    local stamp="$BERTH_VENV/.berth-requirements.sha256"
    [ -f "$req" ] || berth_die "no requirements.txt in $BERTH_REPO" || return 1

    # Serialise concurrent callers (make run and make test at the same time).
    mkdir -p "$(dirname "$BERTH_VENV")"
    local lockfd
    exec {lockfd}>"$BERTH_STATE_DIR/run/venv.lock"
    flock "$lockfd"

    local rc=0
    _berth_ensure_venv_locked "$req" "$stamp" || rc=$?
    exec {lockfd}>&-
    return "$rc"
}

_berth_ensure_venv_locked() {
    local req="$1" stamp="$2" py want have
    if [ ! -x "$BERTH_VENV/bin/python" ]; then
        py="$(command -v python3.11 || command -v python3)" ||
            berth_die "neither python3.11 nor python3 found" || return 1
        berth_log "creating virtualenv $BERTH_VENV with $py"
        "$py" -m venv "$BERTH_VENV" || berth_die "could not create $BERTH_VENV" || return 1
    fi
    "$BERTH_VENV/bin/python" -c '' 2>/dev/null ||
        berth_die "$BERTH_VENV/bin/python does not run (its base Python moved?); remove $BERTH_VENV and retry" || return 1

    want="$(sha256sum "$req" | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    [ "$want" = "$have" ] && return 0

    berth_log "installing requirements.txt into $BERTH_VENV"
    "$BERTH_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" ||
        berth_die "pip install -r requirements.txt failed" || return 1
    printf '%s\n' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# PostgreSQL and Redis (installed and started on the machine before the
# session; these only restart them if they have stopped)
# ---------------------------------------------------------------------------

# berth_wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s.
berth_wait_for() {
    local timeout="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            berth_die "$what did not answer within ${timeout}s"
            return 1
        fi
        sleep 0.5
    done
}

berth_ensure_postgres() {
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)"
    [ -n "$version" ] || berth_die "PostgreSQL is not installed (/etc/postgresql is empty)" || return 1
    berth_log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        berth_die "pg_ctlcluster $version main start failed" || return 1
    berth_wait_for 30 "PostgreSQL on 127.0.0.1:5432" pg_isready -q -h 127.0.0.1 -p 5432
}

# berth_ensure_pg_database NAME: create the database if it does not exist.
berth_ensure_pg_database() {
    local name="$1" exists
    exists="$(psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$name'" 2>/dev/null)" ||
        berth_die "cannot query PostgreSQL as user postgres" || return 1
    [ "$exists" = 1 ] && return 0
    berth_log "creating PostgreSQL database $name"
    createdb -h 127.0.0.1 -U postgres "$name" || berth_die "createdb $name failed" || return 1
}

_berth_redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

berth_ensure_redis() {
    _berth_redis_up && return 0
    berth_log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
        berth_die "redis-server failed to start (see /var/log/redis/ci.log)" || return 1
    berth_wait_for 30 "Redis on 127.0.0.1:6379" _berth_redis_up
}

# ---------------------------------------------------------------------------
# Docker engine (Debian's docker.io, engine 20.10, API 1.41)
# ---------------------------------------------------------------------------
#
# Verified on the build machine (kernel 6.18, cgroup v1, ext4 root, iptables
# 1.8.9 nf_tables): plain `dockerd` with default flags starts in about one
# second with the overlay2 storage driver and the cgroupfs driver, builds
# FROM-scratch images, runs containers, publishes ports through iptables and
# serves DNS on user-defined networks. No extra flags are needed, so none are
# passed; BERTH_DOCKERD_FLAGS adds some if a machine ever needs them.

_berth_engine_up() {
    docker -H "unix://$BERTH_DOCKER_SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_berth_engine_marker() { printf '%s\n' "$BERTH_STATE_DIR/run/engine.started-by-berth"; }

_berth_pid_is() { # PID NAME: is PID alive and is its command NAME?
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

berth_engine_start() {
    local marker log spawnfile pid ours=""
    marker="$(_berth_engine_marker)"
    log="$BERTH_STATE_DIR/log/dockerd.log"
    spawnfile="$BERTH_STATE_DIR/run/dockerd.spawn.pid"

    if _berth_engine_up; then
        BERTH_ENGINE_STARTED_HERE=0
        return 0
    fi
    # An engine we started earlier has died: forget it.
    if [ -f "$marker" ] && ! _berth_pid_is "$(cat "$marker")" dockerd; then
        rm -f "$marker"
    fi

    local t0="$EPOCHREALTIME"
    BERTH_ENGINE_STARTED_HERE=0
    pid="$(cat "$BERTH_DOCKER_PIDFILE" 2>/dev/null || true)"
    if _berth_pid_is "$pid" dockerd; then
        # Another dockerd is still starting up: wait for it, don't race it.
        berth_log "waiting for the Docker engine (pid $pid) that is starting"
    else
        command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] ||
            berth_die "dockerd not found; run berth_ensure_packages (package docker.io)" || return 1
        berth_log "starting the Docker engine on $BERTH_DOCKER_SOCK (log: $log)"
        local flags=()
        # shellcheck disable=SC2206  # intentional word splitting of extra flags
        [ -n "${BERTH_DOCKERD_FLAGS:-}" ] && flags=($BERTH_DOCKERD_FLAGS)
        # Every environment and every stack has a network of its own: the engine's
        # default pools hold about 30 bridge networks, this one 256 (/24 each).
        case " ${BERTH_DOCKERD_FLAGS:-} " in
        *default-address-pool*) ;;
        *) flags+=(--default-address-pool "${BERTH_DOCKER_ADDRESS_POOL:-base=10.213.0.0/16,size=24}") ;;
        esac
        printf '\n==== %s berth: dockerd starting ====\n' "$(date -Is)" >>"$log"
        rm -f "$spawnfile"
        # Own session (setsid) so Ctrl-C in the terminal does not reach it; the
        # child shell writes its pid before exec so we know exactly which
        # process is ours, even if setsid forks.
        # shellcheck disable=SC2016  # $$, $0 and $@ belong to the child shell
        PATH="$PATH:/usr/sbin:/sbin" setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$spawnfile" \
            dockerd -H "unix://$BERTH_DOCKER_SOCK" --pidfile "$BERTH_DOCKER_PIDFILE" "${flags[@]}" \
            >>"$log" 2>&1 </dev/null &
        local _
        for _ in $(seq 1 50); do
            ours="$(cat "$spawnfile" 2>/dev/null || true)"
            [ -n "$ours" ] && break
            sleep 0.1
        done
        rm -f "$spawnfile"
        [ -n "$ours" ] || berth_die "could not launch dockerd" || return 1
    fi

    local deadline=$((SECONDS + 60))
    until _berth_engine_up; do
        if [ -n "$ours" ] && ! kill -0 "$ours" 2>/dev/null; then
            ours=""
            if ! _berth_pid_is "$(cat "$BERTH_DOCKER_PIDFILE" 2>/dev/null)" dockerd; then
                tail -n 20 "$log" >&2
                berth_die "dockerd exited during start-up (full log: $log)"
                return 1
            fi
            # Ours lost a race with another dockerd (pid file found): use that one.
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log" >&2
            berth_die "the Docker engine did not answer on $BERTH_DOCKER_SOCK within 60s (log: $log)"
            return 1
        fi
        sleep 0.25
    done

    if [ -n "$ours" ] && _berth_pid_is "$ours" dockerd &&
        [ "$(cat "$BERTH_DOCKER_PIDFILE" 2>/dev/null)" = "$ours" ]; then
        printf '%s\n' "$ours" >"$marker"
        BERTH_ENGINE_STARTED_HERE=1
        berth_log "Docker engine up (pid $ours) in $(berth_elapsed "$t0")s"
    fi
}

# Stop the engine only if Berth started it (the marker exists). Sends SIGTERM
# and waits up to 30 s; the marker is removed once the engine is gone. Running
# containers are stopped with it (live-restore is off).
berth_engine_stop() {
    local marker pid
    marker="$(_berth_engine_marker)"
    [ -f "$marker" ] || return 0
    pid="$(cat "$marker")"
    if ! _berth_pid_is "$pid" dockerd; then
        rm -f "$marker"
        BERTH_ENGINE_STARTED_HERE=0
        return 0
    fi
    local t0="$EPOCHREALTIME"
    berth_log "stopping the Docker engine (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            berth_die "dockerd (pid $pid) still running 30s after SIGTERM; marker kept, retry with 'make clean'"
            return 1
        fi
        sleep 0.25
    done
    rm -f "$marker"
    BERTH_ENGINE_STARTED_HERE=0
    berth_log "Docker engine stopped in $(berth_elapsed "$t0")s"
}

# Stop the engine if this shell started it (for EXIT traps).
berth_engine_stop_if_started_here() {
    [ "${BERTH_ENGINE_STARTED_HERE:-0}" -eq 1 ] || return 0
    berth_engine_stop
}

# ---------------------------------------------------------------------------
# Berth's image registry (Debian's docker-registry, distribution 2.8)
# ---------------------------------------------------------------------------
#
# Its config.yml is rendered by Berth (`manage.py registry_config`): token auth
# against Berth's /registry/token/, notifications to /registry/notifications/
# with a per-installation secret, storage in $BERTH_STATE_DIR/registry/data.
# Runs like the web server: setsid, pidfile $BERTH_STATE_DIR/run/registry.pid,
# log $BERTH_STATE_DIR/log/registry.log. BERTH_REGISTRY_ADDR (default
# 127.0.0.1:5000) and BERTH_PUBLIC_URL (Berth's URL) must be set as for Berth.

BERTH_REGISTRY_BIN="${BERTH_REGISTRY_BIN:-/usr/bin/docker-registry}"

_berth_http_up() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://$1/v2/")"
    [ "$code" = 401 ] || [ "$code" = 200 ]
}

# _berth_wait_http ADDR LOG NAME...: until ADDR answers /v2/, while every NAME
# runs (30 s at most).
_berth_wait_http() {
    local addr="$1" log="$2" name deadline=$((SECONDS + 30))
    shift 2
    until _berth_http_up "$addr"; do
        for name in "$@"; do
            if ! berth_is_running "$name" || [ "$SECONDS" -ge "$deadline" ]; then
                tail -n 20 "$log" >&2
                berth_die "the registry did not answer on $addr ($name; log: $log)"
                return 1
            fi
        done
        sleep 0.2
    done
}

# _berth_registry_backend CONFIG: where docker-registry itself listens (its config.yml's
# http.addr).
_berth_registry_backend() {
    sed -n '/^http:/,/^[^ ]/s/^  addr: *//p' "$1" | tr -d "'\"" | head -n1
}

# berth_registry_serve [readonly]: start docker-registry on the config.yml rendered in
# $BERTH_STATE_DIR/registry (pidfile run/registry.pid, log log/registry.log), read-only
# (pulls only: distribution's maintenance mode) when asked. Does not wait.
berth_registry_serve() {
    local config="$BERTH_STATE_DIR/registry/config.yml" log="$BERTH_STATE_DIR/log/registry.log"
    local mode="" env=()
    if [ "${1:-}" = readonly ]; then
        mode=" read-only"
        env=(REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}')
    fi
    printf '\n==== %s berth: docker-registry starting%s ====\n' "$(date -Is)" "$mode" >>"$log"
    berth_spawn registry "$log" env "${env[@]}" "$BERTH_REGISTRY_BIN" serve "$config"
}

# berth_registry_gate_serve: start the gate (HAProxy) on the gate.cfg rendered in
# $BERTH_STATE_DIR/registry (pidfile run/registry-gate.pid). Does not wait.
berth_registry_gate_serve() {
    local gate="$BERTH_STATE_DIR/registry/gate.cfg" log="$BERTH_STATE_DIR/log/registry.log"
    printf '\n==== %s berth: registry gate (haproxy) starting ====\n' "$(date -Is)" >>"$log"
    berth_spawn registry-gate "$log" haproxy -db -f "$gate"
}

# Idempotent: does nothing when our registry runs; renders the configs again
# otherwise (so a changed BERTH_PUBLIC_URL or address is picked up) and starts
# docker-registry on its loopback address and, in front of it on
# BERTH_REGISTRY_ADDR, the gate (HAProxy) that sends manifest uploads to Berth
# for the storage quota (the portal on 127.0.0.1:$BERTH_PORT).
berth_registry_start() {
    local addr="${BERTH_REGISTRY_ADDR:-127.0.0.1:5000}"
    local config="$BERTH_STATE_DIR/registry/config.yml" log="$BERTH_STATE_DIR/log/registry.log"
    local gate="$BERTH_STATE_DIR/registry/gate.cfg"
    berth_is_running registry && berth_is_running registry-gate && return 0
    # Never a registry (or anything else) Berth did not start: its tokens, storage and
    # quota gate would not be Berth's.
    berth_check_port "the registry gate" "$addr" BERTH_REGISTRY_ADDR registry-gate || return 1
    [ -x "$BERTH_REGISTRY_BIN" ] ||
        berth_die "$BERTH_REGISTRY_BIN not found; run berth_ensure_packages (package docker-registry)" || return 1
    command -v haproxy >/dev/null 2>&1 ||
        berth_die "haproxy not found; run berth_ensure_packages (package haproxy)" || return 1
    # The registry's own address (loopback, the gate's port + 1 unless
    # BERTH_REGISTRY_BACKEND_ADDR) is decided in apps/registry/config.py only.
    (cd "$BERTH_REPO" && "$BERTH_VENV/bin/python" manage.py registry_config --skip-checks \
        --output "$config" --gate-output "$gate" \
        --portal-addr "127.0.0.1:${BERTH_PORT:-8000}" >/dev/null) ||
        berth_die "could not render $config" || return 1
    local backend
    backend="$(_berth_registry_backend "$config")"
    berth_check_port "the registry behind the gate" "$backend" BERTH_REGISTRY_BACKEND_ADDR \
        registry || return 1
    local t0="$EPOCHREALTIME"
    if ! berth_is_running registry; then
        berth_registry_serve || return 1
    fi
    if ! berth_is_running registry-gate; then
        berth_registry_gate_serve || return 1
    fi
    # The gate answers 503 until the registry behind it is up.
    _berth_wait_http "$addr" "$log" registry registry-gate || {
        berth_registry_stop
        return 1
    }
    berth_log "registry up on $addr, behind its gate, in $(berth_elapsed "$t0")s (log: $log)"
}

# Stops only a registry Berth started (its pidfiles); a foreign one is left alone.
berth_registry_stop() { berth_stop registry-gate 10; berth_stop registry 20; }

# berth_registry_gc: free the blobs no tag references any more (distribution's
# `garbage-collect --delete-untagged` on $BERTH_STATE_DIR/registry/config.yml; its report
# on stdout). It must not run while pushes happen (a layer uploaded but not yet
# referenced would be deleted), so a registry Berth started is restarted read-only for
# it (pulls go on, pushes are refused) and read-write afterwards, each time waiting until
# it answers; with none running, the collection runs directly (a stopped registry is as
# safe as a read-only one). Berth's garbage collection task runs this through
# deploy/registry.sh gc (BERTH_REGISTRY_GC_COMMAND). Fails when the collection or a
# restart fails; the registry is started read-write again in every case.
berth_registry_gc() {
    local config="$BERTH_STATE_DIR/registry/config.yml" log="$BERTH_STATE_DIR/log/registry.log"
    local backend rc=0
    [ -f "$config" ] || berth_die "no $config: the registry was never started here" || return 1
    if ! berth_is_running registry; then
        "$BERTH_REGISTRY_BIN" garbage-collect --delete-untagged "$config"
        return
    fi
    backend="$(_berth_registry_backend "$config")"
    berth_log "garbage collection: restarting the registry read-only"
    berth_stop registry 20
    if berth_registry_serve readonly && _berth_wait_http "$backend" "$log" registry; then
        "$BERTH_REGISTRY_BIN" garbage-collect --delete-untagged "$config" || rc=$?
    else
        rc=1
    fi
    berth_log "garbage collection: restarting the registry read-write"
    berth_stop registry 20
    berth_registry_serve && _berth_wait_http "$backend" "$log" registry || rc=1
    return "$rc"
}

# ---------------------------------------------------------------------------
# The frontier: HAProxy in front of the deployed services (apps/traffic)
# ---------------------------------------------------------------------------
#
# Berth renders its configuration from the database (`manage.py frontier apply`) into
# BERTH_FRONTIER_DIR (default $BERTH_STATE_DIR/frontier), checks it with `haproxy -c`
# and reloads it through the master socket there whenever a route or its containers
# change. HTTP on BERTH_FRONTIER_ADDR (default 127.0.0.1:8880), HTTPS on
# BERTH_FRONTIER_TLS_ADDR (default 127.0.0.1:8443) once a route has a certificate.
# Runs like the registry: setsid, pidfile run/frontier.pid; its log is haproxy.log in
# its folder.

_berth_frontier_dir() { printf '%s\n' "${BERTH_FRONTIER_DIR:-$BERTH_STATE_DIR/frontier}"; }

# Idempotent: renders and installs the configuration from the database (reloading a
# frontier of an earlier run that still runs), then starts HAProxy in master-worker
# mode when none runs, and waits until it answers. Needs the migrated database.
berth_frontier_start() {
    local dir log addr="${BERTH_FRONTIER_ADDR:-127.0.0.1:8880}"
    dir="$(_berth_frontier_dir)"
    # In its folder: a reload that fails quotes its end to the admin (status.json).
    log="$dir/haproxy.log"
    command -v haproxy >/dev/null 2>&1 ||
        berth_die "haproxy not found; run berth_ensure_packages (package haproxy)" || return 1
    if ! berth_is_running frontier; then
        berth_check_port "the frontier" "$addr" BERTH_FRONTIER_ADDR frontier || return 1
        if [ -n "${BERTH_FRONTIER_TLS_ADDR-127.0.0.1:8443}" ]; then
            berth_check_port "the frontier's HTTPS" "${BERTH_FRONTIER_TLS_ADDR:-127.0.0.1:8443}" \
                BERTH_FRONTIER_TLS_ADDR frontier || return 1
        fi
    fi
    (umask 077 && mkdir -p "$dir")
    (cd "$BERTH_REPO" && BERTH_FRONTIER_DIR="$dir" "$BERTH_VENV/bin/python" manage.py frontier \
        --skip-checks apply --reason "make run" >/dev/null) ||
        berth_die "could not render the frontier's configuration in $dir" || return 1
    berth_is_running frontier && return 0
    local t0="$EPOCHREALTIME"
    printf '\n==== %s berth: frontier (haproxy) starting ====\n' "$(date -Is)" >>"$log"
    # The same command line as apps/traffic/process.py `command()` (the tests' frontier).
    berth_spawn frontier "$log" haproxy -W -db -S "$dir/master.sock,mode,600" \
        -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid" || return 1
    local deadline=$((SECONDS + 15))
    # Any HTTP answer will do (404: no route for this host name).
    until curl -s -o /dev/null "http://$addr/"; do
        if ! berth_is_running frontier || [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log" >&2
            berth_die "the frontier did not answer on $addr (log: $log)"
            return 1
        fi
        sleep 0.1
    done
    berth_log "frontier up on $addr in $(berth_elapsed "$t0")s (log: $log)"
}

# Stops only a frontier Berth started (its pidfile); its master stops its workers.
berth_frontier_stop() { berth_stop frontier 10; }

# ---------------------------------------------------------------------------
# Berth's ports: free, or held by Berth's own service from an earlier run
# ---------------------------------------------------------------------------

# _berth_listener_pids PORT: pids listening on TCP PORT (any address), as ss names them
# (only processes ss may see: this user's, or all when root).
_berth_listener_pids() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

_berth_session_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f4; }

# _berth_describe_pid PID: "NAME (pid PID: command line)", shortened.
_berth_describe_pid() {
    local comm cmd
    comm="$(cat "/proc/$1/comm" 2>/dev/null || echo '?')"
    cmd="$(tr '\0\n\t' '   ' <"/proc/$1/cmdline" 2>/dev/null | tr -s ' ' | cut -c1-100)"
    printf '%s (pid %s: %s)' "$comm" "$1" "${cmd% }"
}

# berth_check_port WHAT ADDR VARIABLE [SERVICE]: succeed when nothing listens on ADDR's
# port, or when every listener belongs to Berth's own SERVICE (its pid file under
# $BERTH_STATE_DIR/run; a listener in that process's session counts, as berth_spawn
# makes each service lead its own session). Otherwise say what is in the way and which
# variable moves Berth to another port, and fail.
berth_check_port() {
    local what="$1" addr="$2" var="$3" service="${4:-}"
    local port="${addr##*:}" pids pid own="" ours=1 found=""
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . || return 0
    pids="$(_berth_listener_pids "$port")"
    [ -n "$service" ] && own="$(berth_pid_of "$service")"
    [ -n "$pids" ] && [ -n "$own" ] || ours=0
    for pid in $pids; do
        [ "$(_berth_session_of "$pid")" = "$own" ] || ours=0
        found="${found:+$found, }$(_berth_describe_pid "$pid")"
    done
    [ "$ours" -eq 1 ] && return 0
    local other=$((port + 100))
    [ "$var" = BERTH_PORT ] && other=$((port + 1))
    [ "$other" -le 65535 ] || other=$((port - 100))
    local example="127.0.0.1:$other"
    [ "$var" = BERTH_PORT ] && example="$other"
    berth_die "port $port, wanted for $what ($var=$addr), is already in use by ${found:-a process of another user (ss cannot name it)}. Berth does not use a service it did not start: stop that process, or choose another port, e.g. '$var=$example make run'."
}

# ---------------------------------------------------------------------------
# Background processes of `make run` (daphne, celery worker, celery beat)
# ---------------------------------------------------------------------------
#
# Each runs in its own session (setsid), so Ctrl-C in the terminal reaches
# only run.sh, which stops them in order. Its pid is in
# $BERTH_STATE_DIR/run/NAME.pid; it leads its own process group.

# berth_spawn NAME LOGFILE|- COMMAND...: start COMMAND in the background
# (LOGFILE "-" keeps the terminal as its output).
berth_spawn() {
    local name="$1" log="$2"
    shift 2
    local pidfile="$BERTH_STATE_DIR/run/$name.pid"
    rm -f "$pidfile" "$pidfile.tmp"
    # The child writes its own pid ($$ survives exec), so it is right even if
    # setsid has to fork.
    # shellcheck disable=SC2016  # $$, $0 and $@ belong to the child shell
    if [ "$log" = - ]; then
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile.tmp" "$@" </dev/null &
    else
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile.tmp" "$@" >>"$log" 2>&1 </dev/null &
    fi
    local _ pid=""
    for _ in $(seq 1 50); do
        pid="$(cat "$pidfile.tmp" 2>/dev/null || true)"
        [ -n "$pid" ] && break
        sleep 0.1
    done
    rm -f "$pidfile.tmp"
    [ -n "$pid" ] || berth_die "$name did not start" || return 1
    # Keep the start time too, so a stale pidfile never names a reused pid.
    printf '%s %s\n' "$pid" "$(_berth_starttime "$pid")" >"$pidfile"
}

_berth_starttime() { # field 22 of /proc/PID/stat (the comm field may hold spaces)
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# berth_pid_of NAME: the pid if that process is still the one we started.
berth_pid_of() {
    local pid start file="$BERTH_STATE_DIR/run/$1.pid"
    [ -f "$file" ] || return 0
    read -r pid start <"$file" || return 0
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    [ "$(_berth_starttime "$pid")" = "$start" ] || return 0
    printf '%s\n' "$pid"
}

berth_is_running() { [ -n "$(berth_pid_of "$1")" ]; }

# berth_claim NAME: record the current shell as NAME (e.g. run.sh itself).
berth_claim() {
    printf '%s %s\n' "$$" "$(_berth_starttime "$$")" >"$BERTH_STATE_DIR/run/$1.pid"
}

# berth_stop NAME [TIMEOUT]: SIGTERM the process, wait, then SIGKILL its group.
berth_stop() {
    local name="$1" timeout="${2:-20}" pid
    pid="$(berth_pid_of "$name")"
    if [ -n "$pid" ]; then
        # Only a process that leads its own session (berth_spawn) has a group
        # of its own that is safe to kill as a whole.
        local own_session=0
        [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f4)" = "$pid" ] && own_session=1
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + timeout))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            berth_log "$name (pid $pid) ignored SIGTERM for ${timeout}s; killing it"
        fi
        if [ "$own_session" -eq 1 ]; then
            # Leftover children (celery pool processes, tail | sed) share its group.
            kill -KILL -- "-$pid" 2>/dev/null || true
        else
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$BERTH_STATE_DIR/run/$name.pid"
}

# shellcheck disable=SC2034  # used by run.sh and the Makefile
# What `make run` starts, in the order run.sh and `make clean` stop them.
BERTH_SERVICES=(web beat worker)
# shellcheck disable=SC2034
BERTH_TAILS=(tail-web tail-beat tail-worker)
