#!/usr/bin/env bash
# Berth: `make test` (and CI through .ci/run). Brings up what the tests need
# (Debian packages, venv, PostgreSQL, Redis, the Docker engine), runs ruff and
# pytest, and stops the engine again if it started it (also on failure). Without
# arguments the browser tests run beside the rest (berth_run_whole_suite below).
#
# Arguments go to one pytest run:  bash deploy/test.sh -k hosts -x
# Exit status: pytest's, or 1 if pytest passed but ruff or lint-imports did not. pytest's 5
# ("no tests collected") counts as a failure.
set -euo pipefail

T0="$EPOCHREALTIME"
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

# shellcheck disable=SC2317  # invoked from the EXIT trap
finish() {
    local rc=$?
    trap '' INT TERM PIPE # finish even if the terminal or a pipe reader is gone
    if [ -n "$BROWSER_PID" ]; then # interrupted: the browser run stops too
        kill -TERM "$BROWSER_PID" 2>/dev/null && wait "$BROWSER_PID" 2>/dev/null
    fi
    berth_engine_stop_if_started_here || true
    berth_log "make test: exit $rc, wall time $(berth_elapsed "$T0")s"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

berth_ensure_packages
berth_ensure_venv
berth_ensure_postgres
berth_ensure_redis
berth_engine_start

DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/berth"
export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
if [ "$DATABASE_URL" = "$DEFAULT_DATABASE_URL" ]; then
    # pytest-django creates test_berth itself, but connects to "berth" first.
    berth_ensure_pg_database berth
fi

BROWSER_LOG="test-artifacts/pytest-browser.log"
BROWSER_PID=""

# The whole suite is two pytest runs at once: the browser tests, which mostly wait for
# Chromium, the worker and the engine, and the `second_run` modules (long engine tests
# chosen in tests/conftest.py to even the two out) beside everything else. Each is its own
# installation on the engine with its own test database and Redis db, as two runs
# beside each other always may be. Their output: the main run's as it goes, the browser
# run's when both are done. Exit status: the first failing run's.
berth_run_whole_suite() {
    local browser_db_url browser_rc=0 main_rc=0
    browser_db_url="${DATABASE_URL}_browser"
    if [ "$DATABASE_URL" = "$DEFAULT_DATABASE_URL" ]; then
        berth_ensure_pg_database berth_browser
    fi
    mkdir -p "$(dirname "$BROWSER_LOG")"
    berth_log "pytest -m 'browser or second_run' (in the background, output in $BROWSER_LOG)"
    DATABASE_URL="$browser_db_url" REDIS_URL="${BERTH_TEST_BROWSER_REDIS_URL:-redis://127.0.0.1:6379/1}" \
        "$BERTH_VENV/bin/pytest" -m "browser or second_run" >"$BROWSER_LOG" 2>&1 &
    BROWSER_PID=$!
    berth_log "pytest -m 'not browser and not second_run'"
    "$BERTH_VENV/bin/pytest" -m "not browser and not second_run" || main_rc=$?
    berth_log "waiting for the browser tests"
    wait "$BROWSER_PID" || browser_rc=$?
    BROWSER_PID=""
    berth_log "browser tests and second_run (pytest -m 'browser or second_run'), exit $browser_rc:"
    cat "$BROWSER_LOG"
    local rc
    for rc in "$main_rc" "$browser_rc"; do
        [ "$rc" -ne 5 ] || berth_log "a pytest run collected no tests: that is a failure"
        [ "$rc" -eq 0 ] || return "$rc"
    done
}

# Lint first, but run the tests even if it fails, so one run shows everything.
lint_rc=0
berth_log "ruff check ."
"$BERTH_VENV/bin/ruff" check . || lint_rc=$?
berth_log "ruff format --check ."
"$BERTH_VENV/bin/ruff" format --check . || lint_rc=$?
berth_log "lint-imports (imports flow downwards only: pyproject.toml [tool.importlinter])"
"$BERTH_VENV/bin/lint-imports" --no-cache || lint_rc=$?

test_rc=0
if [ "$#" -gt 0 ]; then
    berth_log "pytest $*"
    "$BERTH_VENV/bin/pytest" "$@" || test_rc=$?
    [ "$test_rc" -ne 5 ] || berth_log "pytest collected no tests: that is a failure"
else
    berth_run_whole_suite || test_rc=$?
fi
if [ "$test_rc" -ne 0 ]; then
    exit "$test_rc"
fi
if [ "$lint_rc" -ne 0 ]; then
    berth_log "tests passed but ruff found problems (see above)"
    exit 1
fi
exit 0
