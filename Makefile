# Two commands for a newcomer: `make run` and `make test`.
.PHONY: run test test-image test-aarch64

# A terminal on http://127.0.0.1:8080 with default settings.
run: node_modules/.package-lock.json
	cargo run --release

# Installs what the tests need (Chromium, npm packages, cargo-audit), then runs
# formatting, lints, the Rust suite, the browser suite and the audit.
test:
	bash scripts/test.sh

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

# Parts of `make test`, on their own: the container image for amd64 and
# arm64 (needs root for docker), and the Rust tests under qemu-aarch64.
test-image: node_modules/.package-lock.json
	bash scripts/test-image.sh

test-aarch64: node_modules/.package-lock.json
	bash scripts/test-aarch64.sh
