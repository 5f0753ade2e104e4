#!/usr/bin/env bash
# Berth: `make run`. Brings up everything Berth needs on this machine and runs
# the web server (daphne), a Celery worker and Celery beat in the background,
# with their logs in $BERTH_STATE_DIR/log and echoed here with a prefix.
# Ctrl-C (or SIGTERM) stops the three, and the Docker engine if this run
# started it. Running it again reuses the venv, the database and the engine.
#
# Environment: BERTH_PORT (default 8000), BERTH_STATE_DIR (default ./var),
# BERTH_REGISTRY_ADDR (default 127.0.0.1:5000, the registry gate; the registry itself
# listens on the next port unless BERTH_REGISTRY_BACKEND_ADDR), BERTH_FRONTIER_ADDR and
# BERTH_FRONTIER_TLS_ADDR (default 127.0.0.1:8880 and :8443, the frontier in front of the
# deployed services). A port held by anything Berth did not start stops the run with a
# message naming it.
set -euo pipefail

T0="$EPOCHREALTIME"
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

PORT="${BERTH_PORT:-8000}"
URL="http://127.0.0.1:$PORT"
LOG="$BERTH_STATE_DIR/log"
PY="$BERTH_VENV/bin/python"

# --- one `make run` per checkout; clear what a killed earlier run left behind ---
if berth_is_running run; then
    berth_die "Berth is already running from this checkout (run.sh pid $(berth_pid_of run)); stop it with Ctrl-C there or 'make clean'"
    exit 1
fi
berth_claim run
for name in "${BERTH_SERVICES[@]}" "${BERTH_TAILS[@]}"; do
    if berth_is_running "$name"; then
        berth_log "stopping $name left over from an earlier run (pid $(berth_pid_of "$name"))"
    fi
    berth_stop "$name" 10
done

# --- machine prerequisites ---------------------------------------------------
berth_ensure_packages
berth_ensure_venv
berth_ensure_redis # PostgreSQL is not needed: the default database is SQLite in var/

# Berth's ports are free, or held by its own registry from an earlier run (reused); the
# registry's backend port is checked once its config names it (berth_registry_start).
export BERTH_REGISTRY_ADDR="${BERTH_REGISTRY_ADDR:-127.0.0.1:5000}"
berth_check_port "Berth's portal" "127.0.0.1:$PORT" BERTH_PORT web || exit 1
if ! { berth_is_running registry && berth_is_running registry-gate; }; then
    berth_check_port "the registry gate" "$BERTH_REGISTRY_ADDR" BERTH_REGISTRY_ADDR registry-gate || exit 1
fi
export BERTH_FRONTIER_ADDR="${BERTH_FRONTIER_ADDR:-127.0.0.1:8880}"
if ! berth_is_running frontier; then
    berth_check_port "the frontier" "$BERTH_FRONTIER_ADDR" BERTH_FRONTIER_ADDR frontier || exit 1
fi

CLEANED=0
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() {
    [ "$CLEANED" -eq 1 ] && return 0
    CLEANED=1
    trap '' INT TERM PIPE # finish even if the terminal or a pipe reader is gone
    echo >&2
    berth_log "shutting down"
    local name
    for name in "${BERTH_SERVICES[@]}"; do
        berth_stop "$name" 20
    done
    # Let the last log lines reach the terminal before the tails go.
    sleep 0.5
    for name in "${BERTH_TAILS[@]}"; do
        berth_stop "$name" 2
    done
    berth_frontier_stop || true
    berth_registry_stop || true
    berth_engine_stop_if_started_here || true
    rm -f "$BERTH_STATE_DIR/run/run.pid"
    berth_log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

berth_engine_start

# The demo templates run images built here from busybox-static (no registry is
# reachable to pull them); skipped in well under a second when they are current.
bash deploy/build-images.sh

# --- REGISTRY: Berth's image registry (Debian's docker-registry) ---------------
# Token auth and notifications point at this run's URL; storage in the state dir;
# the gate (HAProxy) in front sends manifest uploads to this run's portal.
export BERTH_PUBLIC_URL="${BERTH_PUBLIC_URL:-$URL}"
# From here on everything this run writes (registry storage and configs, the SQLite
# database, the secret key, logs, pid files) is owner-only. Not earlier: apt-get, the
# venv, the engine and the demo image build contexts keep the usual permissions.
umask 077
BERTH_PORT="$PORT" berth_registry_start

# --- Django --------------------------------------------------------------------
# migrate --noinput, collectstatic --noinput and berth_bootstrap (creates the
# admin account, registers the local engine as a Host, prints credentials), in
# one Python process: each Django start-up costs about 2 s of CPU here.
"$PY" - <<'PYTHON'
import os

import django
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
django.setup()
call_command("migrate", interactive=False)
call_command("collectstatic", interactive=False)
call_command("berth_bootstrap")
PYTHON

# --- FRONTIER: HAProxy in front of the deployed services, on BERTH_FRONTIER_ADDR ---------
# Its first configuration comes from the database (so it needs the migrations); the
# worker and the portal reload it through its master socket from then on.
berth_frontier_start

# --- background processes ----------------------------------------------------
# tail -c +N starts exactly at the current end of each log, so nothing
# written by the new processes is missed and nothing old is repeated.
start_tail() { # NAME PREFIX LOGFILE
    local size
    touch "$3"
    size="$(stat -c %s "$3")"
    # shellcheck disable=SC2016  # $1..$3 belong to the child shell
    berth_spawn "$1" - bash -c 'tail -c "+$(($1 + 1))" -F "$2" 2>/dev/null | sed -u "s/^/$3 /"' \
        _ "$size" "$3" "$2"
}
start_tail tail-web "[web]   " "$LOG/web.log"
start_tail tail-worker "[worker]" "$LOG/worker.log"
start_tail tail-beat "[beat]  " "$LOG/beat.log"

berth_spawn web "$LOG/web.log" \
    "$BERTH_VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" paas.asgi:application
berth_spawn worker "$LOG/worker.log" \
    "$BERTH_VENV/bin/celery" -A paas worker -l info --concurrency "${BERTH_WORKER_CONCURRENCY:-2}"
berth_spawn beat "$LOG/beat.log" \
    "$BERTH_VENV/bin/celery" -A paas beat -l info --schedule "$BERTH_STATE_DIR/run/celerybeat-schedule"

check_alive() {
    local name
    for name in "${BERTH_SERVICES[@]}"; do
        if ! berth_is_running "$name"; then
            berth_die "$name exited; see $LOG/$name.log"
            return 1
        fi
    done
}

# --- wait until the site answers ---------------------------------------------
deadline=$((SECONDS + 60))
until code="$(curl -s -o /dev/null -w '%{http_code}' "$URL/accounts/login/")" &&
    [ "$code" -ge 200 ] && [ "$code" -lt 400 ]; do
    check_alive || exit 1
    if [ "$SECONDS" -ge "$deadline" ]; then
        berth_die "$URL/accounts/login/ did not answer with 2xx/3xx within 60s (last: ${code:-none}); see $LOG/web.log"
        exit 1
    fi
    sleep 0.5
done

# --- publish the demo images to the registry ----------------------------------
# The demo templates name them as ${BERTH_REGISTRY}/library/NAME:TAG. The push asks
# this portal for a token, so it runs now; unchanged images send no layer again.
if ! "$PY" manage.py publishimages; then
    berth_log "WARNING: the demo images were not published (see above): the demo templates cannot deploy until \`manage.py publishimages\` succeeds"
fi

echo
echo "Berth is up at $URL (in $(berth_elapsed "$T0")s). Ctrl-C stops it."
echo "Deployed apps answer on their routes' host names at http://<host name>:${BERTH_FRONTIER_ADDR##*:}/."
echo

# --- run until Ctrl-C or until a process dies ----------------------------------
while check_alive; do
    # `wait` on a background sleep returns at once when a trapped signal arrives.
    sleep 2 &
    wait $! || true
done
exit 1
