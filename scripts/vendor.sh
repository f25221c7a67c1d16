#!/usr/bin/env bash
# Copies the page's xterm.js (and trzsz) files from node_modules (installed by `npm ci`
# from the committed lockfile) into assets/vendor/, which is committed, so
# that `cargo build` needs no Node.js. The lockfile is the source of truth;
# this list says which of its files the page uses.
#
#   scripts/vendor.sh          regenerate assets/vendor/ (`make vendor`)
#   scripts/vendor.sh --check  fail if assets/vendor/ differs from what the
#                              lockfile installs (CI runs this after `npm ci`)
set -euo pipefail
cd "$(dirname "$0")/.."

# package-relative source            name served under /vendor/
files=(
    "@xterm/xterm/lib/xterm.mjs                     xterm.mjs"
    "@xterm/xterm/css/xterm.css                     xterm.css"
    "@xterm/addon-fit/lib/addon-fit.mjs             addon-fit.mjs"
    "@xterm/addon-webgl/lib/addon-webgl.mjs         addon-webgl.mjs"
    "@xterm/addon-web-links/lib/addon-web-links.mjs addon-web-links.mjs"
    "@xterm/addon-unicode11/lib/addon-unicode11.mjs addon-unicode11.mjs"
    "@xterm/addon-search/lib/addon-search.mjs       addon-search.mjs"
    "@xterm/addon-image/lib/addon-image.mjs         addon-image.mjs"
    "trzsz/lib/trzsz.mjs                            trzsz.mjs"
)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
licenses="$out/LICENSES.txt"
: >"$licenses"
seen=""
for entry in "${files[@]}"; do
    read -r src name <<<"$entry"
    if [ ! -f "node_modules/$src" ]; then
        echo "vendor: node_modules/$src is missing; run 'npm ci' first" >&2
        exit 1
    fi
    # Byte for byte what npm installed, so anyone can check the copy.
    cp "node_modules/$src" "$out/$name"
    # The package's folder: two path parts when scoped (@xterm/xterm), one otherwise.
    case "$src" in
    @*) pkg=$(echo "$src" | cut -d/ -f1-2) ;;
    *) pkg=$(echo "$src" | cut -d/ -f1) ;;
    esac
    case " $seen " in *" $pkg "*) continue ;; esac
    seen="$seen $pkg"
    version=$(node -p "require('./node_modules/$pkg/package.json').version")
    {
        printf '%s %s\n\n' "$pkg" "$version"
        cat "node_modules/$pkg/LICENSE"
        printf '\n\n'
        # A bundle that carries other packages' code says so.
        case "$pkg" in
        trzsz) printf '%s\n\n' "trzsz.mjs bundles pako (MIT and Zlib licences), base64-js (MIT) and ts-md5 (MIT)." ;;
        esac
    } >>"$licenses"
done

if [ "${1:-}" = "--check" ]; then
    if ! diff -r "$out" assets/vendor >/dev/null; then
        diff -r "$out" assets/vendor | head -20 >&2 || true
        echo "vendor: assets/vendor/ is not what package-lock.json installs; run 'make vendor' and commit it" >&2
        exit 1
    fi
    echo "vendor: assets/vendor/ matches package-lock.json"
    exit 0
fi
rm -rf assets/vendor
mkdir -p assets
cp -r "$out" assets/vendor
chmod 755 assets/vendor
chmod 644 assets/vendor/*
echo "vendor: wrote assets/vendor/"
