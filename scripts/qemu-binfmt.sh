#!/usr/bin/env bash
# Lets this machine run aarch64 binaries through qemu-user-static (for the
# arm64 image and the aarch64 test run). Needs qemu-user-static and
# binfmt-support; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
as_root update-binfmts --enable qemu-aarch64
# F (fix binary): the kernel opens the interpreter now, so it also works in
# containers and chroots that do not have it.
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
    { echo "qemu-aarch64 is registered without the F flag" >&2; exit 1; }
echo "qemu-aarch64: $(head -n 1 /proc/sys/fs/binfmt_misc/qemu-aarch64)"
