#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs
# every check. `make test` and CI (.ci/run) both run this.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

say "installing test dependencies"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
# The Prometheus project's OpenMetrics parser, for the /metrics test.
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet prometheus-client==0.26.0
if ! cargo audit --version >/dev/null 2>&1; then
    cargo install cargo-audit --locked
fi

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy"
cargo clippy --all-targets -- -D warnings

say "cargo audit"
advisory_db=${WEBTERM_ADVISORY_DB:-../shared/advisory-db}
if [ -d "$advisory_db" ]; then
    cargo audit --db "$advisory_db" --no-fetch --stale --deny warnings
elif [ "${CI:-}" = true ]; then
    echo "advisory database not found at $advisory_db" >&2
    exit 1
else
    echo "NOTE: no advisory database at $advisory_db (set WEBTERM_ADVISORY_DB); audit not run"
fi

say "deployment files (kustomize, Kubernetes schemas, yamllint, shellcheck)"
bash scripts/check-manifests.sh

say "cargo test"
cargo test --all-targets

say "browser tests (Chromium)"
cargo build --release
node --test --test-concurrency=1 tests/browser/

say "Rust tests for aarch64, under qemu-aarch64"
bash scripts/test-aarch64.sh

say "container image: linux/amd64 and linux/arm64"
bash scripts/test-image.sh
