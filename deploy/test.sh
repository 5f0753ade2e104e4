#!/usr/bin/env bash
# Berth: `make test` (and CI through .ci/run). Brings up what the tests need
# (Debian packages, venv, PostgreSQL, Redis, the Docker engine), runs ruff and
# pytest, and stops the engine again if it started it (also on failure).
#
# Arguments go to pytest:  bash deploy/test.sh -k hosts -x
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

# Lint first, but run the tests even if it fails, so one run shows everything.
lint_rc=0
berth_log "ruff check ."
"$BERTH_VENV/bin/ruff" check . || lint_rc=$?
berth_log "ruff format --check ."
"$BERTH_VENV/bin/ruff" format --check . || lint_rc=$?
berth_log "lint-imports (imports flow downwards only: pyproject.toml [tool.importlinter])"
"$BERTH_VENV/bin/lint-imports" --no-cache || lint_rc=$?

berth_log "pytest $*"
test_rc=0
"$BERTH_VENV/bin/pytest" "$@" || test_rc=$?

if [ "$test_rc" -eq 5 ]; then
    berth_log "pytest collected no tests: that is a failure"
fi
if [ "$test_rc" -ne 0 ]; then
    exit "$test_rc"
fi
if [ "$lint_rc" -ne 0 ]; then
    berth_log "tests passed but ruff found problems (see above)"
    exit 1
fi
exit 0
