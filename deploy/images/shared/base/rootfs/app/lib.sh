# shellcheck shell=sh
# Helpers shared by the demo images' CGI scripts (busybox ash). Source it: . /app/lib.sh
#
# busybox httpd runs every CGI with the container's environment plus the CGI variables
# (REQUEST_METHOD, REQUEST_URI, QUERY_STRING, CONTENT_LENGTH ...). A CGI prints its
# headers, an empty line, then the body; "Status: NNN" must be the very first header,
# which is why every script answers through `respond` below.
#
# Never pass -T to busybox wget: Debian's busybox-static 1.35 wget segfaults with it.
# Bound a call with `timeout SECONDS wget ...` instead.

APP_NAME="${APP_NAME:-demo}"
APP_VERSION="${APP_VERSION:-0.0}"
TAB="$(printf '\t')"

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

host() { hostname 2>/dev/null || echo unknown; }

# respond STATUS CONTENT_TYPE [EXTRA_HEADER...]: the header block of a CGI answer.
respond() {
    status="$1" type="$2"
    shift 2
    case "$status" in
        200) ;;
        201) printf 'Status: 201 Created\r\n' ;;
        303) printf 'Status: 303 See Other\r\n' ;;
        400) printf 'Status: 400 Bad Request\r\n' ;;
        404) printf 'Status: 404 Not Found\r\n' ;;
        405) printf 'Status: 405 Method Not Allowed\r\n' ;;
        413) printf 'Status: 413 Payload Too Large\r\n' ;;
        502) printf 'Status: 502 Bad Gateway\r\n' ;;
        503) printf 'Status: 503 Service Unavailable\r\n' ;;
        *) printf 'Status: 500 Internal Server Error\r\n' ;;
    esac
    printf 'Content-Type: %s\r\nCache-Control: no-store\r\nX-Served-By: %s\r\n' "$type" "$(host)"
    for extra in "$@"; do printf '%s\r\n' "$extra"; done
    printf '\r\n'
}

# json_str TEXT: TEXT as a JSON string literal (control characters become spaces).
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr '\t\r\n' '   ' | tr -d '\000-\037' \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# html TEXT: TEXT escaped for HTML element content and attribute values.
html() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' \
        -e 's/"/\&quot;/g' -e "s/'/\&#39;/g"
}

# fail_json STATUS MESSAGE: an error answer {"error": MESSAGE}, then exit.
fail_json() {
    respond "$1" application/json
    printf '{"error":%s}\n' "$(json_str "$2")"
    exit 0
}

# param NAME TEXT: the URL-decoded value of NAME in "a=1&b=2" (first occurrence).
param() {
    raw="$(printf '%s' "$2" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1)"
    [ -n "$raw" ] && httpd -d "$raw"
}

query_param() { param "$1" "${QUERY_STRING:-}"; }

# read_body [MAX]: the request body (at most MAX bytes, default 8192) or a 413 answer.
read_body() {
    length="${CONTENT_LENGTH:-0}"
    case "$length" in '' | *[!0-9]*) length=0 ;; esac
    if [ "$length" -gt "${1:-8192}" ]; then
        fail_json 413 "request body larger than ${1:-8192} bytes"
    fi
    [ "$length" -gt 0 ] && head -c "$length"
}

# one_line TEXT: TEXT on a single line, without tabs or control characters.
one_line() {
    printf '%s' "$1" | tr '\t\r\n' '   ' | tr -d '\000-\037'
}
