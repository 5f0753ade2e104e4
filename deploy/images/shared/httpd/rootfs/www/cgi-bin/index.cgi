#!/bin/sh
# busybox httpd runs /cgi-bin/index.cgi for a directory URL that has no index.html.
# It routes "/" to the image's page (/app/page) and "/health/" to the health check:
# httpd answers "/health" with a redirect to "/health/", and only CGIs under /cgi-bin/
# can run, so this is how the images offer a live "/health" (clients that do not follow
# redirects can ask "/health/" or "/cgi-bin/health" directly).
. /app/lib.sh

path="${REQUEST_URI%%\?*}"
case "$path" in
    /health/) exec /www/cgi-bin/health ;;
    /) [ -x /app/page ] && exec /app/page ;;
esac
respond 404 "text/plain; charset=utf-8"
echo "not found: $path"
