# Two commands for a newcomer: `make run` and `make test`.
.PHONY: run test vendor test-image test-aarch64 bench-browser

# A terminal on http://127.0.0.1:8080 (another port: make run ARGS='--listen 127.0.0.1:9000').
# Needs only cargo: the page's xterm.js is vendored in assets/vendor/.
run:
	cargo run --release -- $(ARGS)

# Installs what the tests need (Chromium, tmux, npm packages, cargo-audit),
# then runs every section (formatting, lints, audit, manifests, the Rust
# suite, the browser suite, aarch64, the image) and prints a summary table.
test:
	bash scripts/test.sh

# Regenerates assets/vendor/ from package-lock.json (after updating xterm.js).
vendor:
	npm ci --no-audit --no-fund
	bash scripts/vendor.sh

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

# Parts of `make test`, on their own: the container image for amd64 and
# arm64 (needs root for docker), and the Rust tests under qemu-aarch64.
test-image: node_modules/.package-lock.json
	bash scripts/test-image.sh

test-aarch64:
	bash scripts/test-aarch64.sh

# What users feel in the browser, webterm beside ttyd in the same Chromium:
# keystroke to glyph, `cat` to screen, Ctrl-C to prompt, page load. Builds
# nothing: needs target/release/webterm, the npm packages and, for the
# comparison, TTYD=path/to/ttyd. More options: make bench-browser ARGS='--runs 5'.
bench-browser:
	node scripts/bench-browser.mjs $(if $(TTYD),--ttyd $(TTYD)) $(ARGS)
