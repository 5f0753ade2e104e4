#!/usr/bin/env bash
# Berth's registry (docker-registry and its gate), for callers that are not shell
# scripts sourcing deploy/lib.sh: Berth's garbage collection task runs `gc` (the
# default BERTH_REGISTRY_GC_COMMAND), the tests start and stop their registries with
# `serve` and `stop`. Everything acts on $BERTH_STATE_DIR (default ./var) as
# berth_registry_start lays it out: registry/config.yml and gate.cfg, run/registry.pid
# and run/registry-gate.pid, log/registry.log.
#
#   deploy/registry.sh serve   start docker-registry, and the gate when registry/gate.cfg
#                              exists, from configs already rendered; wait until they answer
#   deploy/registry.sh gc      garbage collection (berth_registry_gc): read-only restart,
#                              garbage-collect --delete-untagged, read-write restart
#   deploy/registry.sh stop    stop both (berth_registry_stop)
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry_serve() {
    local config="$BERTH_STATE_DIR/registry/config.yml" gate="$BERTH_STATE_DIR/registry/gate.cfg"
    local log="$BERTH_STATE_DIR/log/registry.log" front
    berth_registry_serve || return 1
    _berth_wait_http "$(_berth_registry_backend "$config")" "$log" registry || return 1
    [ -f "$gate" ] || return 0
    berth_registry_gate_serve || return 1
    front="$(sed -n 's/^ *bind *//p' "$gate" | head -n1)"
    _berth_wait_http "$front" "$log" registry registry-gate
}

case "${1:-}" in
serve) registry_serve ;;
gc) berth_registry_gc ;;
stop) berth_registry_stop ;;
*)
    echo "usage: $0 serve|gc|stop" >&2
    exit 2
    ;;
esac
