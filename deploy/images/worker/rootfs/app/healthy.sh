#!/bin/sh
# HEALTHCHECK of the worker: the last tick is recent (3 intervals + 5 s of slack).
last="$(cat /tmp/heartbeat 2>/dev/null || echo 0)"
limit=$(( ${INTERVAL:-1} * 3 + 5 ))
age=$(( $(date +%s) - last ))
if [ -e /tmp/unhealthy ]; then
    echo "marked unhealthy (/tmp/unhealthy exists)"
    exit 1
fi
if [ "$age" -gt "$limit" ]; then
    echo "last tick ${age}s ago (limit ${limit}s)"
    exit 1
fi
echo "ok: last tick ${age}s ago"
