#!/usr/bin/env bash
# trz and tsz, the shell side of the page's file transfer, for the browser
# tests: the trzsz package from PyPI in a venv of its own under target/
# (Debian's Python refuses pip installs outside a venv). Does nothing when
# the venv is there already. Prints the directory that holds trz and tsz.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

venv=target/trzsz
version=1.1.7
if [ ! -x "$venv/bin/trz" ] || [ "$("$venv/bin/trz" --version 2>/dev/null)" != "trz (trzsz) py $version" ]; then
    rm -rf "$venv"
    # Debian keeps venv support in a package of its own.
    python3 -m venv "$venv" >&2 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv >&2; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "trzsz==$version" >&2
fi
echo "$PWD/$venv/bin"
