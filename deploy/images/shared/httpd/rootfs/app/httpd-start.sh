#!/bin/sh
# PID 1 of the HTTP demo images: busybox httpd in the foreground, stopped cleanly.
#
# httpd installs no SIGTERM handler, and PID 1 of a container ignores signals it has no
# handler for, so `docker stop` would wait its whole grace period and then SIGKILL. This
# shell traps TERM/INT, forwards them and exits 0 at once.
#
# Environment: PORT (default 8080), HTTPD_VERBOSE=1 to log every request to stderr.

port="${PORT:-8080}"
verbose=""
[ "${HTTPD_VERBOSE:-0}" = 1 ] && verbose="-v"

# shellcheck disable=SC2086
httpd -f $verbose -p "0.0.0.0:$port" -h /www &
pid=$!

# shellcheck disable=SC2317 # called by the traps below
stop() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $APP_NAME $APP_VERSION: $1 received, stopping"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exit 0
}
trap 'stop SIGTERM' TERM
trap 'stop SIGINT' INT

echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $APP_NAME $APP_VERSION listening on :$port" \
    "as uid $(id -u) on $(hostname)"
wait "$pid"
status=$?
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $APP_NAME: httpd exited with status $status" >&2
exit "$status"
