#!/usr/bin/env bash
# Build Berth's demo images FROM scratch with Debian's busybox-static.
#
#   deploy/build-images.sh                 build every image in BERTH_DEMO_IMAGES
#   deploy/build-images.sh REF...          build only these (e.g. berth-demo/web:1.1)
#   deploy/build-images.sh --force [REF]   rebuild from scratch (no cache) even when up to date
#   deploy/build-images.sh --list          print the image references, one a line
#
# Idempotent: each image carries the label io.berth.build-hash, a hash of its whole build
# context (Dockerfile, files, the busybox binary, the version); an image whose tag exists
# with the same hash is skipped. The context of berth-demo/NAME:TAG is assembled in a
# temporary folder from deploy/images/shared/<each name in deploy/images/NAME/includes>,
# then deploy/images/NAME/ (its files win), then a copy of busybox; TAG is passed as the
# build argument VERSION.
#
# Environment: DOCKER_HOST (default unix:///var/run/docker.sock), BUSYBOX (default
# /bin/busybox, must be statically linked), DOCKER (the docker CLI, default `docker`),
# DOCKER_BUILDKIT (default: 1 when the CLI can use BuildKit, i.e. a client older than 23
# such as Debian's docker.io, or one with the buildx plugin; else 0, the classic builder).
# BuildKit builds all five images from cold in about 3 s, the classic builder in about 12 s
# (it commits a container per Dockerfile step); with the cache warm both take under 1 s.
set -euo pipefail

# Bump to force a rebuild of everything when the way contexts are assembled changes.
BUILD_RECIPE=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGES_DIR="$HERE/images"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
DOCKER="${DOCKER:-docker}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

# shellcheck source=deploy/lib.sh
source "$HERE/lib.sh"

# The demo images, berth-demo/NAME:TAG, from the list `manage.py publishimages` reads too.
mapfile -t BERTH_DEMO_IMAGES < <(grep -v '^[[:space:]]*\(#\|$\)' "$IMAGES_DIR/demo-images.txt")

usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# buildkit_default: 1 when `$DOCKER build` can use BuildKit, else 0.
buildkit_default() {
    local client
    client="$("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || echo 0)"
    client="${client%%.*}"
    if [[ "$client" =~ ^[0-9]+$ ]] && [ "$client" -lt 23 ]; then
        echo 1
    elif "$DOCKER" buildx version >/dev/null 2>&1; then
        echo 1
    else
        echo 0
    fi
}

# folder_of REF: deploy/images/<NAME> for berth-demo/NAME:TAG.
folder_of() {
    local name="${1%:*}"
    printf '%s\n' "$IMAGES_DIR/${name#berth-demo/}"
}

check_busybox() {
    [ -x "$BUSYBOX" ] || berth_die "$BUSYBOX not found: apt-get install busybox-static"
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        berth_die "$BUSYBOX is dynamically linked: install busybox-static (a FROM scratch image has no libc)"
    fi
}

# assemble REF DIR: the build context of REF in DIR.
assemble() {
    local ref="$1" ctx="$2" folder include
    folder="$(folder_of "$ref")"
    [ -f "$folder/Dockerfile" ] || berth_die "$ref: no Dockerfile in $folder"
    if [ -f "$folder/includes" ]; then
        local includes=()
        read -r -a includes <"$folder/includes"
        for include in "${includes[@]}"; do
            [ -d "$IMAGES_DIR/shared/$include" ] ||
                berth_die "$ref: $folder/includes names a missing folder shared/$include"
            cp -a "$IMAGES_DIR/shared/$include/." "$ctx/"
        done
    fi
    cp -a "$folder/." "$ctx/"
    cp "$BUSYBOX" "$ctx/busybox"
}

# context_hash REF DIR: sha256 over every file's path and content, the version and recipe.
context_hash() {
    local ref="$1" ctx="$2"
    {
        printf 'recipe %s\nversion %s\n' "$BUILD_RECIPE" "${ref##*:}"
        (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-64
}

label_of() {
    "$DOCKER" image inspect --format '{{ index .Config.Labels "io.berth.build-hash" }}' "$1" \
        2>/dev/null || true
}

human_size() {
    awk -v b="$1" 'BEGIN { printf (b >= 1048576 ? "%.1f MB" : "%.0f kB"), (b >= 1048576 ? b / 1048576 : b / 1024) }'
}

# build REF FORCE LOG: build one image unless it is up to date. Prints one line about it.
build() {
    local ref="$1" force="$2" log="$3" ctx hash old_id new_id start size cache=()
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/berth-image.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    assemble "$ref" "$ctx"
    hash="$(context_hash "$ref" "$ctx")"
    if [ "$force" = 0 ] && [ "$(label_of "$ref")" = "$hash" ]; then
        printf '  up to date  %-36s %s\n' "$ref" "(hash ${hash:0:12})"
        return 0
    fi
    old_id="$("$DOCKER" image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
    [ "$force" = 1 ] && cache=(--no-cache)
    start="$EPOCHREALTIME"
    if ! "$DOCKER" build --pull=false "${cache[@]}" --label "io.berth.build-hash=$hash" \
        --build-arg "VERSION=${ref##*:}" --tag "$ref" "$ctx" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        berth_die "$ref: docker build failed (full output in $log)"
    fi
    new_id="$("$DOCKER" image inspect --format '{{.Id}}' "$ref")"
    size="$("$DOCKER" image inspect --format '{{.Size}}' "$ref")"
    # The previous build of this tag is now untagged: remove it unless something uses it.
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        "$DOCKER" image rm "$old_id" >/dev/null 2>&1 || true
    fi
    printf '  built       %-36s %s in %ss\n' "$ref" "$(human_size "$size")" "$(berth_elapsed "$start")"
}

main() {
    local force=0 refs=() ref start
    while [ $# -gt 0 ]; do
        case "$1" in
            --list) printf '%s\n' "${BERTH_DEMO_IMAGES[@]}"; return 0 ;;
            --force) force=1 ;;
            -h | --help) usage; return 0 ;;
            -*) usage >&2; berth_die "unknown option $1" ;;
            *) refs+=("$1") ;;
        esac
        shift
    done
    [ ${#refs[@]} -gt 0 ] || refs=("${BERTH_DEMO_IMAGES[@]}")
    for ref in "${refs[@]}"; do
        [[ " ${BERTH_DEMO_IMAGES[*]} " == *" $ref "* ]] ||
            berth_die "$ref is not a demo image; known: ${BERTH_DEMO_IMAGES[*]}"
    done
    check_busybox
    "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
        berth_die "no Docker engine answers at $DOCKER_HOST (start one: source deploy/lib.sh && berth_engine_start)"
    export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-$(buildkit_default)}"
    # One build at a time (two test runs side by side share the tags and the build logs):
    # the second waits, then finds the images up to date.
    local lock
    exec {lock}>"$BERTH_STATE_DIR/run/build-images.lock"
    flock "$lock"
    start="$EPOCHREALTIME"
    berth_log "demo images (engine $DOCKER_HOST, busybox $BUSYBOX, BuildKit $DOCKER_BUILDKIT):"
    build_all "$force" "${refs[@]}"
    berth_log "done in $(berth_elapsed "$start")s"
}

# build_all FORCE REF...: the images in parallel (the classic builder spends most of its
# time committing one container per step, not using the CPU), reported in list order.
build_all() {
    local force="$1" out failed=0 i pids=()
    shift
    out="$(mktemp -d "${TMPDIR:-/tmp}/berth-build.XXXXXX")"
    for i in $(seq 1 $#); do
        build "${!i}" "$force" "$BERTH_STATE_DIR/log/build-image-$i.log" >"$out/$i" 2>&1 &
        pids+=($!)
    done
    for i in $(seq 1 $#); do
        wait "${pids[$((i - 1))]}" || failed=1
        cat "$out/$i" >&2
    done
    rm -rf "$out"
    [ "$failed" = 0 ] || berth_die "some images failed to build"
}

main "$@"
