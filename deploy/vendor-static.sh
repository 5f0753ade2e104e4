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

if [ "${1:-}" = --latest ]; then
    HTMX_VERSION=2 PICO_VERSION=2 XTERM_VERSION=6 XTERM_FIT_VERSION=0.11
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

rm -rf "$DEST/htmx" "$DEST/pico" "$DEST/xterm"

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

# Both bundles end with a sourceMappingURL comment naming a .map file we do not
# ship; drop it so browsers' dev tools don't ask the server for it (a 404 in
# the logs at every page view).
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/xterm/xterm.js" "$DEST/xterm/addon-fit.js"

sums="$(cd "$DEST" && find htmx pico xterm -type f | sort | xargs sha256sum)"

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

The \`sourceMappingURL\` line at the end of the two xterm bundles is removed (the
maps are not shipped).

## Refresh

    make vendor-static                      # the versions pinned in deploy/vendor-static.sh
    bash deploy/vendor-static.sh --latest   # newest within each major line; then update the pins

## sha256

\`\`\`
$sums
\`\`\`
EOF

echo "static/vendor: htmx.org $htmx_v, @picocss/pico $pico_v, @xterm/xterm $xterm_v, @xterm/addon-fit $fit_v"
