#!/usr/bin/env bash
# Berth: refresh static/vendor/ from the npm registry. Nothing is loaded from a
# CDN at run time; the files below are committed.
#
#   bash deploy/vendor-static.sh            fetch the pinned versions below
#   bash deploy/vendor-static.sh --latest   fetch the newest release within each
#                                           package's major line, then update the
#                                           pins in this file by hand
#
# `npm pack` checks each tarball against the registry's integrity hash. This
# script then writes static/vendor/README.md with the versions and sha256 sums.
set -euo pipefail

cd "$(dirname "$0")/.."

# Pinned versions, and the range --latest picks from.
HTMX_VERSION=2.0.11 # htmx.org, range 2
PICO_VERSION=2.1.1  # @picocss/pico, range 2
XTERM_VERSION=6.0.0 # @xterm/xterm, range 6
XTERM_FIT_VERSION=0.11.0 # @xterm/addon-fit, range 0.11 (pairs with @xterm/xterm 6)
REDOC_VERSION=2.5.4 # redoc, range 2 (the API reference page, /api/v1/redoc/)
SWAGGER_VERSION=5.36.0 # swagger-ui-dist, range 5 (the API docs page, /api/v1/docs/)
UPLOT_VERSION=1.6.32 # uplot, range 1 (the metrics charts)

if [ "${1:-}" = --latest ]; then
    HTMX_VERSION=2 PICO_VERSION=2 XTERM_VERSION=6 XTERM_FIT_VERSION=0.11
    REDOC_VERSION=2 SWAGGER_VERSION=5 UPLOT_VERSION=1
fi

command -v npm >/dev/null || { echo "npm is needed (Node.js from the machine)" >&2; exit 1; }

DEST=static/vendor
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# fetch SPEC -> prints the folder of the unpacked package, sets VERSION
fetch() {
    local spec="$1" tgz
    tgz="$(cd "$TMP" && npm pack --silent "$spec" | tail -n1)"
    mkdir -p "$TMP/${tgz%.tgz}"
    tar -xzf "$TMP/$tgz" -C "$TMP/${tgz%.tgz}"
    PKG="$TMP/${tgz%.tgz}/package"
    VERSION="$(node -p "require('$PKG/package.json').version")"
}

install_file() { # SRC DEST
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2"
    chmod 644 "$2"
}

rm -rf "$DEST/htmx" "$DEST/pico" "$DEST/xterm" "$DEST/redoc" "$DEST/swagger-ui" "$DEST/uplot"

fetch "htmx.org@$HTMX_VERSION"
htmx_v="$VERSION"
install_file "$PKG/dist/htmx.min.js" "$DEST/htmx/htmx.min.js"
install_file "$PKG/LICENSE" "$DEST/htmx/LICENSE"

fetch "@picocss/pico@$PICO_VERSION"
pico_v="$VERSION"
install_file "$PKG/css/pico.min.css" "$DEST/pico/pico.min.css"
install_file "$PKG/LICENSE.md" "$DEST/pico/LICENSE.md"

fetch "@xterm/xterm@$XTERM_VERSION"
xterm_v="$VERSION"
install_file "$PKG/lib/xterm.js" "$DEST/xterm/xterm.js"
install_file "$PKG/css/xterm.css" "$DEST/xterm/xterm.css"
install_file "$PKG/LICENSE" "$DEST/xterm/LICENSE"

fetch "@xterm/addon-fit@$XTERM_FIT_VERSION"
fit_v="$VERSION"
install_file "$PKG/lib/addon-fit.js" "$DEST/xterm/addon-fit.js"
install_file "$PKG/LICENSE" "$DEST/xterm/LICENSE.addon-fit"

fetch "redoc@$REDOC_VERSION"
redoc_v="$VERSION"
install_file "$PKG/bundles/redoc.standalone.js" "$DEST/redoc/bundles/redoc.standalone.js"
install_file "$PKG/LICENSE" "$DEST/redoc/LICENSE"
# ReDoc's sidebar footer shows Redocly's logo from cdn.redoc.ly: every reader of the
# docs would ask a CDN for it. The image becomes an inline (data:) one, no request.
logo='https://cdn.redoc.ly/redoc/logo-mini.svg'
grep -q "$logo" "$DEST/redoc/bundles/redoc.standalone.js" || {
    echo "redoc $redoc_v: the CDN logo moved; check the bundle for outside URLs" >&2
    exit 1
}
blank="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
sed -i "s#$logo#$blank#g" "$DEST/redoc/bundles/redoc.standalone.js"

fetch "swagger-ui-dist@$SWAGGER_VERSION"
swagger_v="$VERSION"
for file in swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js favicon-32x32.png LICENSE; do
    install_file "$PKG/$file" "$DEST/swagger-ui/$file"
done

fetch "uplot@$UPLOT_VERSION"
uplot_v="$VERSION"
install_file "$PKG/dist/uPlot.iife.min.js" "$DEST/uplot/uPlot.iife.min.js"
install_file "$PKG/dist/uPlot.min.css" "$DEST/uplot/uPlot.min.css"
install_file "$PKG/LICENSE" "$DEST/uplot/LICENSE"

# Both bundles end with a sourceMappingURL comment naming a .map file we do not
# ship; drop it so browsers' dev tools don't ask the server for it (a 404 in
# the logs at every page view).
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/xterm/xterm.js" "$DEST/xterm/addon-fit.js" \
    "$DEST/redoc/bundles/redoc.standalone.js" "$DEST/swagger-ui/swagger-ui-bundle.js" \
    "$DEST/swagger-ui/swagger-ui-standalone-preset.js"

sums="$(cd "$DEST" && find htmx pico xterm redoc swagger-ui uplot -type f | sort | xargs sha256sum)"

cat >"$DEST/README.md" <<EOF
# Vendored front-end assets

Served by Django's staticfiles (WhiteNoise); nothing is loaded from a CDN at run time.
Fetched from the npm registry with \`npm pack\` (integrity-checked) by
\`deploy/vendor-static.sh\`; do not edit these files by hand.

| Package | Version | Files | License |
|---|---|---|---|
| [htmx.org](https://www.npmjs.com/package/htmx.org) | $htmx_v | \`htmx/htmx.min.js\` (from \`dist/\`) | 0BSD, \`htmx/LICENSE\` |
| [@picocss/pico](https://www.npmjs.com/package/@picocss/pico) | $pico_v | \`pico/pico.min.css\` (from \`css/\`) | MIT, \`pico/LICENSE.md\` |
| [@xterm/xterm](https://www.npmjs.com/package/@xterm/xterm) | $xterm_v | \`xterm/xterm.js\` (UMD, \`window.Terminal\`), \`xterm/xterm.css\` | MIT, \`xterm/LICENSE\` |
| [@xterm/addon-fit](https://www.npmjs.com/package/@xterm/addon-fit) | $fit_v | \`xterm/addon-fit.js\` (UMD, \`window.FitAddon.FitAddon\`) | MIT, \`xterm/LICENSE.addon-fit\` |
| [redoc](https://www.npmjs.com/package/redoc) | $redoc_v | \`redoc/bundles/redoc.standalone.js\` (\`/api/v1/redoc/\`) | MIT, \`redoc/LICENSE\` |
| [swagger-ui-dist](https://www.npmjs.com/package/swagger-ui-dist) | $swagger_v | \`swagger-ui/\`: \`swagger-ui.css\`, \`swagger-ui-bundle.js\`, \`swagger-ui-standalone-preset.js\`, \`favicon-32x32.png\` (\`/api/v1/docs/\`) | Apache-2.0, \`swagger-ui/LICENSE\` |
| [uplot](https://www.npmjs.com/package/uplot) | $uplot_v | \`uplot/uPlot.iife.min.js\` (\`window.uPlot\`), \`uplot/uPlot.min.css\` (the metrics charts) | MIT, \`uplot/LICENSE\` |

The \`sourceMappingURL\` line at the end of the xterm, ReDoc and Swagger UI bundles is
removed (the maps are not shipped). ReDoc's sidebar logo, which its bundle loads from
cdn.redoc.ly, is replaced by a blank inline image: the API docs pages make no request
outside the portal (tests/portal/test_api_docs_requests.py checks it in a browser).

## Refresh

    make vendor-static                      # the versions pinned in deploy/vendor-static.sh
    bash deploy/vendor-static.sh --latest   # newest within each major line; then update the pins

## sha256

\`\`\`
$sums
\`\`\`
EOF

echo "static/vendor: htmx.org $htmx_v, @picocss/pico $pico_v, @xterm/xterm $xterm_v, @xterm/addon-fit $fit_v, redoc $redoc_v, swagger-ui-dist $swagger_v, uplot $uplot_v"
