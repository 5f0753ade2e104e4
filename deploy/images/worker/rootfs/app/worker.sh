#!/bin/sh
# berth-demo/worker: a line per tick on stdout ("tick N <UTC time> ..."), and every 10th
# tick one more line on stderr, so log viewers have both streams to show.
#
# Environment:
#   INTERVAL    seconds between ticks (default 1)
#   TARGET_URL  when set, each tick fetches it and logs the answer (the guestbook's
#               stats service polls the API's /cgi-bin/stats this way)
#   EXIT_AFTER  stop after this many ticks (default 0: never), with EXIT_CODE (default 0):
#               a one-shot job, or a crashing container for restart-policy tests
#
# SIGTERM/SIGINT end the loop at once and the process exits 0. Each tick writes the time
# to /tmp/heartbeat; the HEALTHCHECK fails when it is stale.

interval="${INTERVAL:-1}"
target="${TARGET_URL:-}"
exit_after="${EXIT_AFTER:-0}"
ticks=0
running=1

stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
trap 'running=0; signal=SIGTERM' TERM
trap 'running=0; signal=SIGINT' INT

echo "$(stamp) worker $APP_VERSION started on $(hostname) as uid $(id -u):" \
    "interval ${interval}s${target:+, polling $target}"
while [ "$running" = 1 ]; do
    ticks=$((ticks + 1))
    line="tick $ticks $(stamp)"
    if [ -n "$target" ]; then
        if answer="$(timeout 5 wget -q -O - "$target" 2>&1)"; then
            line="$line $(printf '%s' "$answer" | tr '\r\n' '  ')"
        else
            line="$line error: $(printf '%s' "$answer" | tr '\r\n' '  ')"
        fi
    fi
    echo "$line"
    [ $((ticks % 10)) -eq 0 ] && echo "tick $ticks $(stamp) checkpoint: $ticks ticks so far (stderr)" >&2
    date +%s > /tmp/heartbeat
    if [ "$exit_after" -gt 0 ] && [ "$ticks" -ge "$exit_after" ]; then
        echo "$(stamp) worker: done after $ticks ticks, exiting with status ${EXIT_CODE:-0}"
        exit "${EXIT_CODE:-0}"
    fi
    # Sleeping in the background lets a trapped signal interrupt `wait` right away.
    sleep "$interval" &
    wait $!
done
echo "$(stamp) worker: $signal received after $ticks ticks, exiting cleanly"
exit 0
